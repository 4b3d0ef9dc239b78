"""Cut-over: start a model version from the models a Spark replay rebuilt from the log.

``spark_batch`` replays the raw topic up to pinned end offsets and publishes one snapshot per
key (``origin="replay"``) whose ``extra`` carries the key's seen row ids and the pinned end
offset of every raw partition. A processor started with ``--from-replay`` for that version
seeds each key's state from its snapshot and, when its consumer group has no committed
offsets yet, commits those end offsets first: it continues from exactly the next offset,
learning nothing twice and skipping nothing.
"""

from __future__ import annotations

import uuid

from confluent_kafka import Consumer, TopicPartition

from kappaml.dataset import Dataset
from kappaml.drift import DriftConfig, DriftMonitor
from kappaml.evaluation import PrequentialMetrics
from kappaml.kafka import KafkaSettings
from kappaml.learner import STATE_CODE, KeyState
from kappaml.logging import get_logger
from kappaml.records import InvalidRecord
from kappaml.records.snapshots import Snapshot, snapshot_header, snapshot_label
from kappaml.seen import SeenIds

__all__ = ["CutoverError", "ReplaySeed", "load_replay_seed"]

log = get_logger(__name__)


class CutoverError(RuntimeError):
    pass


class ReplaySeed:
    """The replay's snapshots of one version, and where in the raw topic the replay stopped."""

    def __init__(self, snapshots: dict[str, Snapshot], end_offsets: dict[int, int]) -> None:
        self.snapshots = snapshots
        self.end_offsets = end_offsets

    def state_for(self, key: str, dataset: Dataset, spec: str, version: str, window: int,
                  drift: DriftConfig | None = None) -> KeyState:
        snap = self.snapshots.get(key)
        if snap is None:
            return KeyState.new(key, dataset, spec, version, window=window, drift=drift)
        # The drift monitor starts afresh (warm-up included): snapshots carry models, not
        # detector windows.
        return KeyState(key=key, spec=spec, version=version, model=snap.model,
                        metrics=PrequentialMetrics(window=window),
                        seen=SeenIds.from_json(snap.extra["seen"]),
                        learned=snap.learned, last_offset=snap.offset, code=STATE_CODE,
                        drift=DriftMonitor(drift) if drift is not None else None,
                        generation=int(snap.extra.get("generation", 0)))

    def commit_start_offsets(self, kafka: KafkaSettings, group: str, raw_topic: str) -> bool:
        """Commit the replay's end offsets for ``group`` unless it has offsets already."""
        consumer = Consumer({**kafka.client_config(), "group.id": group, "enable.auto.commit": False})
        try:
            partitions = [TopicPartition(raw_topic, p) for p in sorted(self.end_offsets)]
            committed = consumer.committed(partitions, timeout=30)
            if any(tp.offset >= 0 for tp in committed):
                log.info("consumer group already has offsets; resuming, not cutting over", group=group)
                return False
            consumer.commit(offsets=[TopicPartition(raw_topic, p, o) for p, o in self.end_offsets.items()],
                            asynchronous=False)
            log.info("cut-over: start offsets committed", group=group, offsets=self.end_offsets)
            return True
        finally:
            consumer.close()


def load_replay_seed(kafka: KafkaSettings, models_topic: str, version: str, spec: str) -> ReplaySeed:
    """Read every replay snapshot of ``version`` from the (compacted) models topic."""
    consumer = Consumer({**kafka.client_config(), "group.id": f"cutover-{uuid.uuid4().hex}",
                         "enable.auto.commit": False, "isolation.level": "read_committed"})
    snapshots: dict[str, Snapshot] = {}
    end_offsets: dict[int, int] = {}
    newest = -1
    try:
        md = consumer.list_topics(models_topic, timeout=30).topics.get(models_topic)
        if md is None or md.error is not None:
            raise CutoverError(f"models topic {models_topic!r} not found")
        for p in md.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(models_topic, p), timeout=30)
            if high <= low:
                continue
            consumer.assign([TopicPartition(models_topic, p, low)])
            position = low
            while position < high:
                msg = consumer.poll(10)
                if msg is None:
                    break
                position = msg.offset() + 1
                if msg.error() or msg.value() is None:
                    continue
                try:
                    header = snapshot_header(msg.value())
                except InvalidRecord:
                    continue  # not a snapshot: nothing to seed from
                if header.version != version or header.origin != "replay":
                    continue
                label = (msg.key() or b"").decode("utf-8", "replace").partition("/")[0]
                # ``version`` alone: published before replay snapshots had labels of their own.
                if label not in (snapshot_label(version, origin="replay"), version):
                    continue  # a challenger's snapshot (version+spec): the cut-over seeds the champion
                snap = Snapshot.decode(msg.value())
                # If the version was replayed more than once, the newest replay wins.
                old = snapshots.get(snap.key)
                if old is None or snap.created_at >= old.created_at:
                    snapshots[snap.key] = snap
                if snap.created_at >= newest:
                    newest = snap.created_at
                    end_offsets = {int(k): int(v) for k, v in snap.extra.get("end_offsets", {}).items()}
    finally:
        consumer.close()
    if not snapshots:
        raise CutoverError(f"no replay snapshots of version {version!r} in {models_topic}: run "
                           f"`python -m spark_batch replay --version {version}` first")
    specs = {s.spec for s in snapshots.values()}
    if specs != {spec}:
        raise CutoverError(f"replay snapshots of version {version!r} are of spec(s) {sorted(specs)}, "
                           f"not {spec!r}: start the processor with --model-spec {specs.pop()}")
    missing = [k for k, s in snapshots.items() if "seen" not in s.extra or "end_offsets" not in s.extra]
    if missing or not end_offsets:
        raise CutoverError(f"replay snapshots of version {version!r} lack seen ids / end offsets "
                           f"(e.g. key {missing[:1]}); re-run the replay with this kappaml")
    return ReplaySeed(snapshots, end_offsets)
