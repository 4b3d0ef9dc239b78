"""--auto-rollback against the real broker: a gate promotion whose spec turns worse right after
it is rolled back through the log (reason auto-rollback, with evidence); one that holds is not."""

from __future__ import annotations

import signal
import time
from collections import defaultdict
from pathlib import Path

import pytest

from infra.testing import json_values, produce_raw, read_all
from kappaml.dataset import Dataset
from kappaml.gate import GateConfig, PartitionGate
from kappaml.kafka import KafkaSettings
from kappaml.learner import KeyState, learn_step
from kappaml.lineup import CONTROL_KEY_BYTES, Promotion
from kappaml.records import decode
from kappaml.topics import Topics
from tests.processor.test_gatekeeper import _count
from tests.processor.test_processor import _start, fleet

pytestmark = pytest.mark.kafka

SERVING, CHALLENGER = "rls", "linear"
GATE = GateConfig(window=100, min_pairs=50, every=20, auto_rollback=True)
FLAGS = ("--challengers", CHALLENGER, "--promotion", "auto", "--auto-rollback",
         "--gate-window", "100", "--gate-min-pairs", "50", "--gate-every", "20")
N, CHANGE, CHUNK = 1600, 600, 40


def _controls(kafka: KafkaSettings, topics: Topics) -> dict[tuple[int, int], Promotion]:
    return {(p, o): Promotion.decode(v) for k, v, p, o in read_all(kafka, topics.raw)
            if k == CONTROL_KEY_BYTES}


def _run(kafka: KafkaSettings, topics: Topics, tmp_path: Path, revert: bool) -> Dataset:
    """Rows shift (x 1.3 + 40) after CHANGE, so the gate promotes linear. With ``revert``, the
    keys of a partition go back to the old world as soon as its gate promotion is in the log:
    the former champion is better again during the promoted spec's probation."""
    dataset, rows, toml = fleet(tmp_path, N, seed=11)
    proc = _start(topics, kafka, tmp_path / "state", "--dataset", str(toml), *FLAGS)
    partition_of: dict[str, int] = {}
    reverted: set[int] = set()
    try:
        chunks = [(0, CHANGE)] + [(lo, min(lo + CHUNK, N)) for lo in range(CHANGE, N, CHUNK)]
        for lo, hi in chunks:
            part = []
            for i in range(lo, hi):
                row = dict(rows[i])
                if i >= CHANGE and partition_of.get(row["vehicle"]) not in reverted:
                    row[dataset.target] = row[dataset.target] * 1.3 + 40
                part.append(row)
            produce_raw(kafka, topics.raw, dataset, part, start_id=lo + 1)
            deadline = time.monotonic() + 120
            while _count(kafka, topics.predictions) < hi:
                assert time.monotonic() < deadline, f"rows up to {hi} not served within 120 s"
                time.sleep(0.3)
            if not partition_of:
                partition_of = {k.decode(): p for k, _v, p, _o in read_all(kafka, topics.raw)
                                if k != CONTROL_KEY_BYTES}
            if revert:
                reverted |= {p for (p, _o), c in _controls(kafka, topics).items() if c.reason == "gate"}
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and b"Traceback" not in err, err[-3000:]
    return dataset


def reference(kafka: KafkaSettings, topics: Topics, dataset: Dataset) -> list[tuple[int, int, str, str]]:
    """Uninterrupted, in-process: both specs per key, one gate per partition with auto-rollback,
    switching where it decides, as the processor does. Its decisions (partition, offset, spec,
    reason)."""
    raw = sorted(read_all(kafka, topics.raw), key=lambda m: (m[2], m[3]))
    states: dict[tuple[str, str], KeyState] = {}
    gates: dict[int, PartitionGate] = defaultdict(PartitionGate)
    serving: dict[int, str] = defaultdict(lambda: SERVING)
    decisions = []
    for key, value, partition, offset in raw:
        if key == CONTROL_KEY_BYTES:
            promotion = Promotion.decode(value)
            if promotion.after is None:  # by hand; a gate's took effect where it was decided
                previous, serving[partition] = serving[partition], promotion.spec
                gates[partition].switched(promotion.reason, previous, GATE.auto_rollback)
            continue
        example = decode(dataset, value)
        errors = {}
        for spec in (SERVING, CHALLENGER):
            ks = states.setdefault((example.key, spec), KeyState.new(example.key, dataset, spec, "v1"))
            result = learn_step(ks, example, offset)
            errors[spec] = (result.y_pred - result.y_true) ** 2
        candidate = gates[partition].observe(serving[partition], errors, GATE)
        if candidate is not None:
            decisions.append((partition, offset, candidate.spec, candidate.reason))
            previous, serving[partition] = serving[partition], candidate.spec
            gates[partition].switched(candidate.reason, previous, GATE.auto_rollback)
    return decisions


def _check(kafka: KafkaSettings, topics: Topics, dataset: Dataset) -> dict[tuple[int, int], Promotion]:
    controls = _controls(kafka, topics)
    # Every control record is a decision of the uninterrupted reference, at the same offset,
    # written after it, with its evidence.
    ref = reference(kafka, topics, dataset)
    assert sorted((p, c.evidence.offset, c.spec, c.reason) for (p, _o), c in controls.items()
                  if c.evidence is not None) == sorted(ref)
    assert all(c.evidence is not None and c.evidence.offset == c.after < o for (_p, o), c in controls.items())
    # Served: the spec each partition's control records say, switching after each decision.
    history = defaultdict(list)
    for (p, _o), c in sorted(controls.items()):
        history[p].append((c.after, c.spec))
    for pred in json_values(read_all(kafka, topics.predictions, expect=N)):
        spec = SERVING
        for o, s in history[pred["partition"]]:
            if pred["offset"] > o:
                spec = s
        assert pred["spec"] == spec, pred
    return controls


def test_a_promotion_that_turns_worse_is_rolled_back_through_the_log(kafka_settings, topics, tmp_path: Path):
    dataset = _run(kafka_settings, topics, tmp_path, revert=True)
    controls = _check(kafka_settings, topics, dataset)
    by_partition = defaultdict(list)
    for (p, o), c in sorted(controls.items()):
        by_partition[p].append((o, c))
    assert set(by_partition) == {0, 1}
    for p, seq in by_partition.items():
        assert [(c.spec, c.reason) for _o, c in seq] == [
            (CHALLENGER, "gate"), (SERVING, "auto-rollback")], seq
        (_o, gate), (back_at, back) = seq
        ev = back.evidence
        assert ev is not None and ev.serving == CHALLENGER and ev.partition == p
        assert gate.after < ev.offset < back_at and ev.mse_challenger < ev.mse_serving
        assert back.id == f"auto-rollback-v1-{p}-{ev.offset}"
    metrics = json_values(read_all(kafka_settings, topics.metrics))
    applied = sorted((m["partition"], m["spec"], m.get("reason"))
                     for m in metrics if m["scope"] == "promotion")
    assert applied == [(p, s, r) for p in (0, 1)
                       for s, r in ((CHALLENGER, "gate"), (SERVING, "auto-rollback"))]


def test_a_promotion_that_holds_is_not_rolled_back(kafka_settings, topics, tmp_path: Path):
    dataset = _run(kafka_settings, topics, tmp_path, revert=False)
    controls = _check(kafka_settings, topics, dataset)
    assert sorted((p, c.spec, c.reason) for (p, _o), c in controls.items()) == [
        (0, CHALLENGER, "gate"), (1, CHALLENGER, "gate")]
