"""The test kit of kappaml, shipped with it (as Bytewax ships ``bytewax.testing``).

What the tests, ``make chaos`` and the benchmarks share to drive a real pipeline: child processes
and their ports (:mod:`infra.testing.procs`), writing to and reading back from a real broker
(:mod:`infra.testing.kafka`), a paced writer and a read_committed watcher
(:mod:`infra.testing.pipeline`).
"""

from infra.testing.kafka import (
    COMPACTION_MARKER,
    compact_now,
    consumer_partitions,
    end_offsets,
    json_values,
    produce_bytes,
    produce_raw,
    produce_records,
    read_all,
    read_topic,
    typed_rows,
    wait_settled,
)
from infra.testing.pipeline import CommittedWatcher, PacedWriter
from infra.testing.procs import (
    REPO,
    discard_cluster,
    free_port,
    free_port_run,
    kill,
    running,
    spawn,
    start,
    stop,
    wait_http,
)

__all__ = [
    "COMPACTION_MARKER", "REPO", "CommittedWatcher", "PacedWriter", "compact_now", "consumer_partitions",
    "discard_cluster",
    "end_offsets", "free_port", "free_port_run", "json_values", "kill", "produce_bytes", "produce_raw",
    "produce_records", "read_all",
    "read_topic", "running", "spawn", "start", "stop", "typed_rows", "wait_http", "wait_settled",
]
