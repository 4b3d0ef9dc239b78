"""An instance frozen past its session timeout (a long GC pause, a stopped VM) and then resumed.

While it is frozen the group gives its partitions to the other instance; when it wakes up it
still holds an open transaction for partitions it no longer owns. Depending on when it wakes,
Kafka fences that commit (its static member id was replaced) and the instance must stop with a
one-line error, having written nothing, to be restarted; or it rejoins the group by itself.
Either way every row must be predicted exactly once and every key's model must equal one
sequential pass.
"""

from __future__ import annotations

import signal
import subprocess
import time
import uuid

import pytest

from infra.testing import CommittedWatcher, PacedWriter, wait_settled
from kappaml.fingerprint import fingerprint
from kappaml.models import DEFAULT_SPEC
from kappaml.topics import Topics, ensure_topics
from tests.processor.test_group_rebalance import _start, _wait
from tests.processor.test_processor import fleet, latest_snapshots, reference_states

# make test-all (47 s): partitions moving between live instances is make test's test_group_rebalance.
pytestmark = [pytest.mark.kafka, pytest.mark.slow]

PARTITIONS = 6
KEYS = 12
ROWS = 2400
RATE = 150.0


def test_an_instance_paused_past_its_session_loses_and_repeats_nothing(kafka_settings, tmp_path):
    topics = Topics(prefix=f"t{uuid.uuid4().hex[:10]}", raw_partitions=PARTITIONS)
    ensure_topics(kafka_settings, topics.specs())
    dataset, rows, toml = fleet(tmp_path, ROWS)
    for i, row in enumerate(rows):
        row["vehicle"] = f"v{i % KEYS}"
    watcher = CommittedWatcher(kafka_settings, topics.predictions)
    watcher.start()
    watcher.ready.wait(10)
    procs = [_start(topics, kafka_settings, tmp_path / f"state{i}", toml) for i in range(2)]
    writer = PacedWriter(kafka_settings, topics.raw, dataset, rows, RATE)
    writer.start()
    try:
        _wait(lambda: writer.written >= ROWS // 4 and watcher.count() >= ROWS // 5, 180,
              "a quarter of the stream predicted", procs)
        procs[0].send_signal(signal.SIGSTOP)  # frozen mid-checkpoint, past its 6 s session
        time.sleep(10)
        procs[0].send_signal(signal.SIGCONT)
        try:
            procs[0].wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass  # rejoined by itself
        else:
            woken = procs[0].communicate()[1].decode(errors="replace")
            assert procs[0].returncode == 1, woken[-2000:]
            assert woken.splitlines()[-1].startswith(
                "error: processor stopped: Kafka did not take its outputs"), woken[-2000:]
            assert "Traceback" not in woken
            procs[0] = _start(topics, kafka_settings, tmp_path / "state0", toml)
        writer.join(timeout=180)
        _wait(lambda: len({r["id"] for _t, r in watcher.arrivals}) >= ROWS, 240,
              "a prediction for every row", procs)
        time.sleep(1.5)
    finally:
        writer.stop()
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        stderr = [proc.communicate(timeout=60)[1] for proc in procs]
        watcher.stop()
    records = [r for _t, r in watcher.arrivals]
    assert sorted(r["id"] for r in records) == list(range(1, ROWS + 1)), "one prediction per row"
    reference = reference_states(kafka_settings, topics, dataset, DEFAULT_SPEC)
    wait_settled(kafka_settings, topics.models)  # see test_group_rebalance
    snaps = latest_snapshots(kafka_settings, topics)
    for key, ks in reference.items():
        assert (snaps[key].learned, snaps[key].fingerprint) == (ks.learned, fingerprint(ks.model)), key
    assert all(b"Traceback" not in err for err in stderr), stderr
