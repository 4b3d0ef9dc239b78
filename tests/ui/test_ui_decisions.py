"""Pure parts of the gate and decisions views (ui/decisions.py) and the store's gate looks."""

from __future__ import annotations

import json

import pandas as pd
from ui_lifecycle_kit import SpecFigures, comparison_record, evidence_of, gate_look, promotion_record

from kappaml.records import PromotionApplied, metrics_from_dict
from ui.decisions import decisions_frame, gate_frame, gate_partitions, rollback_choice
from ui.lifecycle import promotions_frame
from ui.store import LiveStore


def test_gate_frame_is_one_partitions_looks_in_offset_order() -> None:
    looks = [gate_look(1, 300, 2, 70), gate_look(0, 100, 1, 50), gate_look(1, 250, 1, 55),
             gate_look(1, 260, 1, 60, version="v2"), gate_look(1, 300, 2, 40, spec="amf")]
    assert gate_partitions(looks, "v1") == [0, 1] and gate_partitions(looks, "v3") == []
    frame = gate_frame(looks, "v1", 1)
    assert list(zip(frame["offset"], frame["challenger"], strict=True)) == [
        (250, "linear"), (300, "amf"), (300, "linear")]
    assert list(frame["win share"]) == [0.55, 0.4, 0.7] and list(frame["look"]) == [1, 2, 2]
    assert frame["p_value"].iloc[0] == looks[2].p_value and frame["alpha"].iloc[0] == looks[2].alpha
    assert len(gate_frame(looks, "v1")) == 4 and gate_frame(looks, "v9").empty


def test_decisions_are_the_promotions_with_a_reason_with_the_gates_evidence() -> None:
    look = gate_look(0, 420, 3, 80, promoted=True, mse=(9.5, 3.25))
    records = [
        promotion_record("linear", "rls", 0, 40, 1),  # manual: not a decision of its own
        promotion_record("linear", "rls", 0, 431, 2, reason="gate", evidence=evidence_of(look)),
        promotion_record("rls", "linear", 0, 500, 3, reason="rollback"),
        promotion_record("amf", "rls", 1, 600, 4, reason="auto-rollback"),  # any reason shows as written
        promotion_record("amf", "rls", 1, 9, 5, reason="gate", version="v2"),
    ]
    frame = decisions_frame(records, "v1")
    assert list(frame["reason"]) == ["auto-rollback", "rollback", "gate"]  # newest first
    gate = frame.iloc[2]
    assert (gate["before"], gate["after"], gate["deciding offset"], gate["in effect after"]) == (
        "rls", "linear", 420, 431)
    assert (gate["look"], gate["window (pairs)"], gate["wins"], gate["n"]) == (3, 100, 80, 100)
    assert (gate["p-value"], gate["alpha"]) == (look.p_value, look.alpha)
    assert (gate["MSE before"], gate["MSE after"]) == (9.5, 3.25)
    assert pd.isna(frame.iloc[1]["deciding offset"]) and pd.isna(frame.iloc[1]["p-value"])
    assert len(decisions_frame(records)) == 4

    # The rollback offers first the spec that served before the gate's newest promotion.
    figures = {s: SpecFigures(1, 1.0, 1.0, 1.0, 1.0) for s in ("rls", "linear", "amf")}
    comparisons = [comparison_record(1, figures)]
    assert rollback_choice(comparisons, frame) == (["amf", "linear", "rls"], 2)
    assert rollback_choice(comparisons, decisions_frame([])) == (["amf", "linear", "rls"], 0)
    assert rollback_choice([], frame) == ([], 0)


def test_the_store_keeps_the_gates_looks_apart_and_bounded() -> None:
    store = LiveStore(gate_cap=2)
    for offset in (100, 200, 300):
        store.add_metrics(gate_look(0, offset, offset // 100, 60))
    view = store.view()
    assert [g.offset for g in view.gate_looks] == [200, 300] and not view.metrics


def _applied(spec: str, offset: int, ts: int, **extra) -> PromotionApplied:
    return PromotionApplied(version="v1", spec=spec, previous="rls", partition=1, offset=offset, id=f"p-{ts}",
                            by="tester@host", requested_ts=ts, ts=ts, reason=extra.pop("reason"), **extra)


def test_takeovers_and_rollbacks_to_a_generation_say_which_models_not_a_bare_star() -> None:
    # As the processor publishes them (processor/app.py _applied), through the store from JSON.
    store = LiveStore()
    for record in (
        _applied("rls", 900, 1, reason="takeover", model_key="v0", generation=1),
        _applied("*", 1000, 2, reason="rollback", generation=0),  # rollback --to 0
        _applied("rls", 1100, 3, reason="rollback", generation=2),  # rollback --to 2 --spec rls
        _applied("linear", 1200, 4, reason="rollback"),  # rollback --to linear: a spec serves
    ):
        store.add_metrics(metrics_from_dict(json.loads(record.encode())))
    promotions = store.view().promotions
    frame = decisions_frame(promotions, "v1")
    assert list(frame["after"]) == [
        "linear",
        "generation 2 of rls (in each key a later takeover replaced it)",
        "generation 0 of every spec (in each key a later takeover replaced it)",
        "rls generation 1 of key v0 (background model took over)",
    ]
    assert list(frame["reason"]) == ["rollback", "rollback", "rollback", "takeover"]
    assert "*" not in set(frame["after"]) and set(frame["before"]) == {"rls"}
    assert list(promotions_frame(promotions, "v1")["spec"]) == list(frame["after"])


def test_a_background_models_looks_are_a_line_with_levels_of_their_own() -> None:
    from dataclasses import replace  # noqa: PLC0415

    from ui.charts import gate_chart  # noqa: PLC0415

    def background(offset: int, look: int, wins: int, promoted: bool = False) -> object:
        # As processor/gatelooks.py background_looks writes them: spec and serving are the key's spec.
        return replace(gate_look(1, offset, look, wins, spec="rls", promoted=promoted), role="background",
                       model_key="v0", generation=1)

    looks = [gate_look(1, 100, 1, 55), gate_look(1, 200, 2, 60),
             background(130, 1, 22), background(135, 2, 27), background(140, 3, 33, promoted=True)]
    store = LiveStore()
    for look in looks:  # through JSON and the store, as the page gets them
        store.add_metrics(metrics_from_dict(json.loads(look.encode())))
    frame = gate_frame(store.view().gate_looks, "v1", 1)
    name = "rls background, key v0, generation 1"
    assert list(zip(frame["offset"], frame["challenger"], frame["series"], frame["look"], strict=True)) == [
        (100, "linear", "gate", 1), (130, name, name, 1), (135, name, name, 2), (140, name, name, 3),
        (200, "linear", "gate", 2)]
    lines, levels, rules = gate_chart(frame).layer
    assert set(lines.data["challenger"]) == {"linear", name}
    # Each series its own level line: the gate's looks 1, 2 and the background model's 1, 2, 3.
    assert sorted(zip(levels.data["series"], levels.data["look"], strict=True)) == [
        ("gate", 1), ("gate", 2), (name, 1), (name, 2), (name, 3)]
    assert list(rules.data["challenger"]) == [name] and list(rules.data["offset"]) == [140]
