"""The gate after a drift detection (kappaml/gatedrift.py): it starts afresh and looks often
until its window is full again; the false-promotion bound holds per restart."""

from __future__ import annotations

import pickle
import random
from dataclasses import replace

import pytest

from kappaml.gate import GateConfig, PartitionGate
from kappaml.gatedrift import look_due
from kappaml.learner import Outcome, StepResult
from processor.gatekeeper import Gatekeeper
from processor.gatelooks import gate_looks

CONFIG = GateConfig()  # window 200, min_pairs 100, every 50, drift_every 5, drift_min_pairs 30
OFF = replace(CONFIG, drift_every=0)


def _pairs(rng: random.Random, n: int, serving: float, challenger: float) -> list[tuple[float, float]]:
    return [(rng.gauss(0, serving) ** 2, rng.gauss(0, challenger) ** 2) for _ in range(n)]


def _run(pairs: list[tuple[float, float]], config: GateConfig, detections: set[int],
         gate: PartitionGate | None = None, start: int = 0) -> list[tuple[int, str, int]]:
    """(scored, spec, look) of each promotion; a detection before the rows numbered in ``detections``."""
    gate = gate or PartitionGate()
    out = []
    for i, (s, c) in enumerate(pairs, start=start):
        if i in detections:
            gate.drifted(config)
        candidate = gate.observe("rls", {"rls": s, "linear": c}, config)
        if candidate is not None:
            out.append((candidate.scored, candidate.spec, candidate.look))
            gate.pending = "x"  # written: nothing more until it is read back
    return out


@pytest.mark.parametrize("kwargs,fragment", [
    ({"drift_every": -1}, "drift_every"), ({"drift_every": 2.0}, "drift_every"),
    ({"drift_every": True}, "drift_every"), ({"drift_min_pairs": 0}, "drift_min_pairs"),
    ({"drift_min_pairs": "30"}, "drift_min_pairs"),
])
def test_config_rejects_bad_drift_arguments(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        GateConfig(**kwargs)


def test_the_cadence_is_fast_until_the_window_is_full_and_never_asks_more_than_min_pairs():
    assert [s for s in range(1, 60) if look_due(CONFIG, 1000 + s, s) is not None] == list(range(5, 60, 5))
    assert look_due(CONFIG, 1030, 30) == 30
    assert look_due(CONFIG, 1199, 199) is None and look_due(CONFIG, 1200, 200) == 100  # ordinary again
    assert look_due(OFF, 1005, 5) is None and look_due(OFF, 1050, 50) == 100
    assert look_due(replace(CONFIG, min_pairs=20), 1030, 30) == 20


def test_a_detection_restarts_the_spending_and_clears_the_windows():
    rng = random.Random(5)
    gate = PartitionGate()
    assert _run(_pairs(rng, 1000, 1.0, 1.0), CONFIG, set(), gate) == []
    assert gate.looks == 19 and len(gate.windows["linear"]) == 200  # looks at 100, 150, ..., 1000
    assert gate.drifted(CONFIG)
    assert gate.looks == 0 and gate.windows == {} and gate.drift_at == 1000
    for s, c in _pairs(rng, 12, 1.0, 1.0):
        gate.observe("rls", {"rls": s, "linear": c}, CONFIG)
    assert len(gate.windows["linear"]) == 12  # only the pairs after the detection
    assert not gate.drifted(CONFIG) and gate.drift_at == 1000  # in the fast phase: no second restart
    for s, c in _pairs(rng, 188, 1.0, 1.0):
        gate.observe("rls", {"rls": s, "linear": c}, CONFIG)
    assert gate.drift_at is None and gate.drifted(CONFIG)  # 200 rows on: a detection restarts again
    assert not PartitionGate().drifted(OFF)


def test_after_a_detection_a_clearly_better_challenger_is_promoted_within_drift_min_pairs_rows():
    for seed in range(20):
        rng = random.Random(seed)
        # 3,000 rows where the challenger errs more, then the serving spec errs 5 times as much.
        pairs = _pairs(rng, 3000, 1.0, 1.3) + _pairs(rng, 600, 5.0, 1.0)
        detected = 3000 + rng.randrange(5, 40)  # the detector fires some rows after the change
        fast = _run(pairs, CONFIG, {detected})
        assert fast and fast[0][1] == "linear", seed
        since = fast[0][0] - detected
        assert CONFIG.drift_min_pairs <= since <= CONFIG.drift_min_pairs + CONFIG.drift_every, (seed, fast)
        assert fast[0][2] == since // CONFIG.drift_every - 5  # looks from 1: at 30, 35, ... rows
        slow = _run(pairs, OFF, {detected})  # the gate without the restart decides later
        assert slow and slow[0][0] >= fast[0][0] + 20, (seed, slow, fast)


def test_false_alarms_on_a_stream_without_change_rarely_promote_an_equal_challenger():
    # Detections every 400 rows (4 restarts in 2,000 rows), two specs of the same error: the
    # bound is 1 - confidence per restart. Without the restarts, the bound of one budget holds.
    detections = {400, 800, 1200, 1600}
    false = sum(bool(_run(_pairs(random.Random(seed), 2000, 1.0, 1.0), CONFIG, detections))
                for seed in range(200))
    assert false <= 50  # the bound: 5 budgets (the start and 4 restarts) of 5 % each (measured: 28)
    assert sum(bool(_run(_pairs(random.Random(seed), 2000, 1.0, 1.0), OFF, detections))
               for seed in range(200)) <= 10
    # A slightly worse challenger, or one that ties every row, is never promoted.
    worse = [(s, c * 1.2) for s, c in _pairs(random.Random(1), 2000, 1.0, 1.0)]
    assert _run(worse, CONFIG, detections) == []
    assert _run([(s, s) for s, _ in worse], CONFIG, detections) == []


def test_the_same_rows_and_detections_give_the_same_decisions_also_after_a_restore():
    rng = random.Random(11)
    pairs = _pairs(rng, 700, 1.0, 1.0) + _pairs(rng, 300, 2.0, 1.0)
    straight = _run(pairs, CONFIG, {720})
    assert straight and straight == _run(pairs, CONFIG, {720})
    for cut in (650, 721, 735, 760):  # before, at and during the fast phase
        gate = PartitionGate()
        assert _run(pairs[:cut], CONFIG, {720}, gate) == []
        gate = pickle.loads(pickle.dumps(gate))  # stored with the partition, read back after a crash
        assert _run(pairs[cut:], CONFIG, {720}, gate, start=cut) == straight, cut


def test_a_gate_pickled_before_the_drift_restart_existed_loads_without_one():
    gate = PartitionGate()
    _run(_pairs(random.Random(2), 120, 1.0, 1.0), CONFIG, set(), gate)
    del gate.__dict__["drift_at"]  # the attribute an older pickle lacks
    restored = pickle.loads(pickle.dumps(gate))
    assert restored.drift_at is None and restored.pairs_needed(CONFIG) == 100
    assert restored.drifted(CONFIG) and restored.pairs_needed(CONFIG) == 30


def test_a_fast_look_is_published_with_the_pairs_it_needed():
    gate = PartitionGate()
    gate.drifted(CONFIG)
    looks = []
    for _ in range(30):
        before = gate.looks
        candidate = gate.observe("rls", {"rls": 4.0, "linear": 1.0, "amf": 4.0}, CONFIG)
        if gate.looks != before:
            looks = gate_looks(gate, CONFIG, candidate, version="v1", instance="i", partition=0, offset=9,
                               serving="rls", ts=0)
    assert [(g.spec, g.pairs, g.look, g.passed, g.promoted) for g in looks] == [
        ("amf", 30, 1, False, False), ("linear", 30, 1, True, True)]
    assert "30 pairs" not in looks[0].why  # judged on its evidence, not "30 pairs < min_pairs 100"


class _Detection:
    """Stands for kappaml.drift.Detection: the gatekeeper only asks whether there is one."""


def _outcome(y_pred: float, row: int, drift: bool = False) -> Outcome:
    return Outcome("LEARNED", learned=StepResult(y_true=0.0, y_pred=y_pred, id=row,
                                                 drift=_Detection() if drift else None))  # type: ignore[arg-type]


class _Store:
    """The processor's partition stores as the gatekeeper uses them: one state per partition."""

    def __init__(self) -> None:
        self.states: dict[int, dict[str, object]] = {}

    def store_transaction(self, partition: int) -> _Store:
        self._partition = partition
        return self

    def as_state(self, prefix: bytes) -> _Store:
        return self

    def get(self, key: str) -> object:
        return self.states.setdefault(self._partition, {}).get(key)

    def set(self, key: str, value: object) -> None:
        self.states.setdefault(self._partition, {})[key] = value


def test_the_gatekeeper_restarts_a_partitions_gate_at_a_detection_of_the_serving_spec_only():
    store = _Store()
    keeper = Gatekeeper(processor=store, config=CONFIG)  # type: ignore[arg-type]
    for row in range(60):
        for partition in (0, 1):
            # A challenger's detection changes nothing; the serving spec's restarts its partition's gate.
            keeper.scored("rls", _outcome(2.0, row, drift=row == 50 and partition == 1))
            keeper.scored("linear", _outcome(2.5, row, drift=row == 40))
            keeper.record_done(partition, offset=row, serving="rls")
    keeper.checkpoint()
    first, second = store.states[0]["gate"], store.states[1]["gate"]
    assert isinstance(first, PartitionGate) and isinstance(second, PartitionGate)
    assert (first.drift_at, len(first.windows["linear"])) == (None, 60)
    assert (second.drift_at, len(second.windows["linear"])) == (50, 10)


def test_a_detection_during_a_probation_restarts_its_window_and_the_verdict_comes_a_window_later():
    config = GateConfig(window=100, min_pairs=50, every=20, auto_rollback=True, margin=0.5)
    gate = PartitionGate()
    gate.switched("gate", previous="rls", auto_rollback=True)  # linear promoted, rls on trial
    rng = random.Random(3)
    verdicts = []
    for row in range(400):
        if row == 60:
            assert gate.drifted(config) and gate.watch == "rls"  # the probation goes on
        # rls errs 30 % less: too little for the looks' margin of 50 %, enough for the verdict.
        c = gate.observe("linear", {"linear": 1.3 * rng.uniform(0.5, 1.5), "rls": rng.uniform(0.5, 1.5)},
                         config)
        if c is not None:
            verdicts.append((c.spec, c.reason, c.scored))
            gate.pending = "x"
    assert verdicts == [("rls", "auto-rollback", 160)]  # the window of the rows after the detection
