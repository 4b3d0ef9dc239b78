"""The promotion gate (kappaml/gate.py): the sign test, the margin, the window, determinism."""

from __future__ import annotations

import pickle
import random
from dataclasses import replace

import pytest
from scipy.stats import binomtest

from kappaml.gate import GateConfig, PairedWindow, PartitionGate, decide, probation_verdict, sign_test_p


@pytest.mark.parametrize("wins,n", [(0, 0), (0, 1), (1, 1), (5, 10), (8, 10), (10, 10), (0, 30), (60, 100),
                                    (140, 200), (199, 200), (512, 1000)])
def test_sign_test_p_equals_scipy_binomtest(wins, n):
    expected = binomtest(wins, n, 0.5, alternative="greater").pvalue if n else 1.0
    assert sign_test_p(wins, n) == pytest.approx(expected, rel=1e-12, abs=1e-300)


def test_the_looks_spend_alpha_summing_to_one_minus_confidence():
    config = GateConfig(confidence=0.95)
    assert config.alpha_at(1) == pytest.approx(0.025) and config.alpha_at(2) == pytest.approx(0.05 / 6)
    assert sum(config.alpha_at(k) for k in range(1, 100_000)) == pytest.approx(0.05, rel=1e-4)
    with pytest.raises(ValueError):
        config.alpha_at(0)


def test_sign_test_p_rejects_impossible_counts():
    for wins, n in ((3, 2), (-1, 5), (0, -1)):
        with pytest.raises(ValueError):
            sign_test_p(wins, n)


@pytest.mark.parametrize("kwargs,fragment", [
    ({"window": 0}, "window"), ({"window": 2.5}, "window"), ({"window": True}, "window"),
    ({"confidence": 1.0}, "confidence"), ({"confidence": 0.3}, "confidence"),
    ({"confidence": "x"}, "confidence"),
    ({"margin": -0.1}, "margin"), ({"margin": 1.0}, "margin"),
    ({"min_pairs": 0}, "min_pairs"), ({"window": 50, "min_pairs": 51}, "min_pairs"),
    ({"every": 0}, "every"),
])
def test_config_rejects_bad_arguments(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        GateConfig(**kwargs)


def _errors(rng: random.Random, n: int, scale_serving: float,
            scale_challenger: float) -> list[tuple[float, float]]:
    return [(rng.gauss(0, scale_serving) ** 2, rng.gauss(0, scale_challenger) ** 2) for _ in range(n)]


def _run(pairs: list[tuple[float, float]], config: GateConfig) -> list[tuple[int, str]]:
    gate = PartitionGate()
    out = []
    for s, c in pairs:
        candidate = gate.observe("rls", {"rls": s, "linear": c}, config)
        if candidate is not None:
            out.append((candidate.scored, candidate.spec))
            gate.pending = "x"  # written: the gate proposes nothing more until it is read back
    return out


def test_a_clearly_better_challenger_is_promoted_once_enough_pairs_are_in():
    config = GateConfig(window=200, min_pairs=100, every=50)
    pairs = _errors(random.Random(1), 400, 3.0, 1.0)
    # Evaluated at scored rows 50, 100, ...: too few pairs at 50, promoted at 100, then pending.
    assert _run(pairs, config) == [(100, "linear")]
    decision = decide(PairedWindow(200, pairs[:100]), config)
    assert decision.promote and decision.wins > decision.n / 2 and decision.p_value <= 0.05
    assert decision.mse_challenger < decision.mse_serving * 0.95


def test_an_equal_challenger_is_promoted_no_more_often_than_the_confidence_allows():
    # The looks' levels sum to 1 - confidence: over 100 streams of 2,000 rows with two specs of
    # the same error, at most ~5 may promote (a test at 0.05 per look promoted in 55 %).
    config = GateConfig()
    false = sum(bool(_run(_errors(random.Random(seed), 2000, 1.0, 1.0), config)) for seed in range(100))
    assert false <= 5
    strict = GateConfig(confidence=0.999)
    assert not any(_run(_errors(random.Random(seed), 2000, 1.0, 1.0), strict) for seed in range(100))


def test_an_identical_challenger_is_never_promoted():
    config = GateConfig(window=200, min_pairs=100, every=10)
    # Identical errors: every pair is a tie, no evidence at all.
    same = [(x, x) for x, _ in _errors(random.Random(0), 3000, 1.0, 1.0)]
    assert _run(same, config) == []
    d = decide(PairedWindow(200, same), config)
    assert (d.n, d.wins, d.p_value, d.promote) == (0, 0, 1.0, False)


def test_wins_without_the_margin_or_a_margin_without_wins_do_not_promote():
    config = GateConfig(window=200, min_pairs=100, margin=0.05)
    # Wins every row, but by 1 %: significant, not worth it.
    slight = [(1.0, 0.99)] * 150
    d = decide(PairedWindow(200, slight), config)
    assert d.p_value < 1e-30 and not d.promote and "margin" in d.why
    # Much lower MSE from a few rows, losing most: the margin alone is not evidence.
    few = [(100.0, 0.0)] * 5 + [(1.0, 1.1)] * 145
    d = decide(PairedWindow(200, few), config)
    assert d.mse_challenger < d.mse_serving / 2 and not d.promote and "sign test" in d.why


def test_the_window_keeps_the_last_pairs_only():
    window = PairedWindow(3)
    for i in range(5):
        window.add(float(i), 0.0)
    assert list(window.pairs) == [(2.0, 0.0), (3.0, 0.0), (4.0, 0.0)]


def test_rows_the_serving_spec_did_not_score_neither_count_nor_pair():
    gate = PartitionGate()
    config = GateConfig(window=10, min_pairs=1, every=1)
    assert gate.observe("rls", {"linear": 1.0}, config) is None
    assert gate.scored == 0 and gate.windows == {}
    gate.observe("rls", {"rls": 4.0}, config)  # a challenger that missed the row: no pair for it
    assert gate.scored == 1 and gate.windows == {}


def test_the_best_of_several_passing_challengers_wins_and_ties_are_stable():
    config = GateConfig(window=100, min_pairs=20, every=20)
    gate = PartitionGate()
    candidate = None
    for _ in range(20):
        candidate = gate.observe("rls", {"rls": 4.0, "amf": 1.0, "linear": 0.5, "hoeffding": 0.5}, config)
    assert candidate is not None and candidate.spec == "hoeffding"  # tied with linear: sorted first
    assert candidate.serving == "rls" and candidate.scored == 20


def test_a_promotion_restarts_the_windows_and_a_rollback_holds_the_gate():
    config = GateConfig(window=100, min_pairs=10, every=10)
    gate = PartitionGate()
    for _ in range(9):
        gate.observe("rls", {"rls": 4.0, "linear": 1.0}, config)
    gate.pending = "gate-v1-0-9"
    gate.switched("gate")
    assert gate.windows == {} and gate.pending is None and not gate.held
    gate.switched("rollback")
    assert gate.held
    assert all(gate.observe("rls", {"rls": 4.0, "linear": 1.0}, config) is None for _ in range(50))
    gate.switched(None)  # a manual promote: the gate may act again
    got = [c for _ in range(20) if (c := gate.observe("rls", {"rls": 4.0, "linear": 1.0}, config))]
    assert got and got[0].spec == "linear" and got[0].look == 1


def test_a_restored_gate_decides_at_the_same_row_as_an_uninterrupted_one():
    config = GateConfig(window=60, min_pairs=40, every=7)
    pairs = _errors(random.Random(3), 300, 1.0, 1.0) + _errors(random.Random(4), 300, 3.0, 1.0)
    straight = _run(pairs, config)
    assert straight and straight[0][0] > 300  # after the change only
    for cut in (1, 150, 299, 305, 320):
        gate = PartitionGate()
        for s, c in pairs[:cut]:
            assert gate.observe("rls", {"rls": s, "linear": c}, config) is None
        gate = pickle.loads(pickle.dumps(gate))  # stored with the partition, read back after a crash
        found = [cand for s, c in pairs[cut:]
                 if (cand := gate.observe("rls", {"rls": s, "linear": c}, config)) is not None]
        assert (found[0].scored, found[0].spec) == straight[0], cut


def _probation(former_err: float, new_err: float, config: GateConfig, rows: int) -> list:
    """A gate promotion of linear over rls, then ``rows`` scored rows with these errors."""
    gate = PartitionGate()
    gate.switched("gate", previous="rls", auto_rollback=config.auto_rollback)
    rng = random.Random(3)
    out = []
    for _ in range(rows):
        c = gate.observe("linear", {"linear": new_err * rng.uniform(0.5, 1.5),
                                    "rls": former_err * rng.uniform(0.5, 1.5)}, config)
        if c is not None:
            out.append((c.spec, c.reason, c.scored))
            gate.pending = "x"
    return out


def test_auto_rollback_when_the_promoted_spec_turns_worse_in_its_probation():
    config = GateConfig(window=100, min_pairs=50, every=20, auto_rollback=True)
    # Clearly worse: the regular looks already see it (look 1 at 60 pairs), labelled auto-rollback.
    assert _probation(1.0, 3.0, config, 300) == [("rls", "auto-rollback", 60)]
    # Without --auto-rollback the same evidence is an ordinary gate promotion back.
    assert _probation(1.0, 3.0, GateConfig(window=100, min_pairs=50, every=20), 300) == [("rls", "gate", 60)]
    # Worse by less than the looks' margin (50 % here), enough for the verdict
    # at the end of the probation (one test at 1 - confidence, no margin).
    slight = _probation(1.0, 1.3, replace(config, margin=0.5), 300)
    assert slight == [("rls", "auto-rollback", 100)]


def test_no_auto_rollback_when_the_promoted_spec_holds_and_the_rollback_holds_the_gate():
    config = GateConfig(window=100, min_pairs=50, every=20, auto_rollback=True)
    assert _probation(3.0, 1.0, config, 400) == []  # the new spec is better: confirmed
    assert _probation(1.0, 1.0, config, 400) == []  # equal: no significant worsening
    gate = PartitionGate()
    gate.switched("auto-rollback")
    assert gate.held and gate.watch is None
    assert probation_verdict(PairedWindow(100, [(2.0, 1.0)] * 100), config).promote
