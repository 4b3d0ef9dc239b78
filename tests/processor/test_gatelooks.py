"""The gate's looks as records (processor/gatelooks.py), without Kafka: one per challenger at a
look, telling what the look decided; the promoted one is the gate's candidate."""

from __future__ import annotations

import json

from kappaml.gate import GateConfig, PartitionGate
from processor.gatelooks import gate_looks

CONFIG = GateConfig(window=20, min_pairs=10, every=10)


def test_a_look_publishes_each_challengers_statistic_and_the_candidate_is_the_promoted_one() -> None:
    gate = PartitionGate()
    candidate, looks = None, []
    for i in range(40):  # linear always errs less, amf only every other row
        errors = {"rls": 4.0, "linear": 1.0, "amf": 1.0 if i % 2 else 9.0}
        before = gate.looks
        candidate = gate.observe("rls", errors, CONFIG)
        if gate.looks != before:
            looks.append(gate_looks(gate, CONFIG, candidate, version="v1", instance="i", partition=3,
                                    offset=100 + i, serving="rls", ts=7))
        if candidate is not None:
            break
    assert candidate is not None and candidate.spec == "linear"
    assert [[(g.look, g.spec, g.offset) for g in look] for look in looks] == [
        [(1, "amf", 109), (1, "linear", 109)]]
    amf, linear = looks[0]
    assert (linear.passed, linear.promoted, amf.passed, amf.promoted) == (True, True, False, False)
    d = candidate.decision
    assert (linear.pairs, linear.n, linear.wins, linear.p_value, linear.alpha, linear.mse_challenger) == (
        d.pairs, d.n, d.wins, d.p_value, d.alpha, d.mse_challenger)
    assert (amf.wins, amf.n, amf.partition, amf.serving, amf.scored) == (5, 10, 3, "rls", 10)
    assert "p=" in amf.why and linear.why == d.why


def test_a_background_models_looks_are_gate_records_of_their_own() -> None:
    from kappaml.background import BackgroundLook  # noqa: PLC0415
    from kappaml.gate import PairedWindow, decide  # noqa: PLC0415
    from kappaml.records import GateLook, metrics_from_dict  # noqa: PLC0415
    from processor.gatelooks import background_looks  # noqa: PLC0415

    window = PairedWindow(CONFIG.window)
    for i in range(12):
        window.add(4.0, 1.0 if i % 4 else 9.0)  # the background model errs less on 9 of 12 rows
    d = decide(window, CONFIG, 2, CONFIG.min_pairs)
    looks = (BackgroundLook(generation=3, look=2, paired=12, decision=d, takeover=False),)
    (record,) = background_looks(looks, key="v0", spec="rls", version="v1", instance="i", partition=1,
                                 offset=500, ts=9)
    back = metrics_from_dict(json.loads(record.encode()))
    assert back == record and isinstance(back, GateLook)
    assert (back.role, back.model_key, back.generation) == ("background", "v0", 3)
    assert (back.spec, back.serving, back.look, back.scored, back.offset) == ("rls", "rls", 2, 12, 500)
    assert (back.wins, back.n, back.promoted) == (9, 12, False)
    assert back.p_value == d.p_value and back.passed == d.promote
    # A challenger's look (and one written before the field existed) has no role.
    plain = json.loads(record.encode())
    for field in ("role", "model_key", "generation"):
        del plain[field]
    assert metrics_from_dict(plain).role is None
