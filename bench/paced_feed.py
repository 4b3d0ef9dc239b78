"""``python -m bench.paced_feed``: a live stream for a benchmark's processor, in a process of its own.

    python -m bench.paced_feed --bootstrap HOST:PORT --topic RAW --group GROUP [--rate 400] < rows.jsonl

Reads typed rows (JSON objects, one a line) from stdin, waits until the consumer group ``GROUP``
(the processor's) is stable with a member, then writes the rows to ``RAW`` at ``--rate`` rows/s
as the ingest would (the test kit's PacedWriter). A backlog written up front would put anything the
processor writes to the raw topic meanwhile (the gate's promotions) behind every row; a live stream
puts it where a user's would land. Its own process, so its CPU is not counted as the processor's.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from confluent_kafka.admin import AdminClient

from infra.testing import PacedWriter
from kappaml.dataset import builtin
from kappaml.kafka import KafkaSettings


def wait_for_group(kafka: KafkaSettings, group: str, timeout: float) -> None:
    """Until ``group`` is stable with at least one member (its partitions assigned)."""
    from confluent_kafka import ConsumerGroupState  # noqa: PLC0415 - only this path needs it

    admin = AdminClient(kafka.client_config())
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            desc = admin.describe_consumer_groups([group], request_timeout=5)[group].result(30)
            if desc.state == ConsumerGroupState.STABLE and desc.members:
                return
        except Exception:  # noqa: BLE001, S110 - not there yet, or a busy coordinator: ask again
            pass
        time.sleep(0.2)
    raise TimeoutError(f"consumer group {group!r} not stable within {timeout:g} s")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--group", required=True, help="start once this consumer group is stable")
    p.add_argument("--dataset", default="co2")
    p.add_argument("--rate", type=float, default=400.0, help="rows per second")
    p.add_argument("--wait", type=float, default=120.0, help="seconds to wait for the group")
    args = p.parse_args(argv)
    rows = [json.loads(line) for line in sys.stdin if line.strip()]
    kafka = KafkaSettings(bootstrap_servers=args.bootstrap)
    wait_for_group(kafka, args.group, args.wait)
    writer = PacedWriter(kafka, args.topic, builtin(args.dataset), rows, args.rate)
    writer.run()  # in this thread: the process does nothing else
    sys.stdout.write(json.dumps({"written": writer.written}) + "\n")
    return 0 if writer.written == len(rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
