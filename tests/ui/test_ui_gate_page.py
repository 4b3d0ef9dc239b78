"""The Champion vs challengers page with the promotion gate (AppTest, real broker): each
challenger's p-value against the looks' levels, the decisions with their evidence, and a
Rollback button that writes what ``python -m processor rollback --to SPEC`` writes."""

from __future__ import annotations

import time

import pytest
from ui_apptest import configure, layers, started_app, texts
from ui_lifecycle_kit import (
    LifecycleWriter,
    SpecFigures,
    comparison_record,
    evidence_of,
    gate_look,
    promotion_record,
)
from ui_testkit import synthetic_rows

from infra.testing import end_offsets, produce_raw, read_all
from kappaml.dataset import builtin
from kappaml.kafka import KafkaSettings
from kappaml.lineup import CONTROL_KEY_BYTES, Promotion
from kappaml.topics import Topics

pytestmark = pytest.mark.kafka



def _history(ts0: int) -> list:
    """rls serves, linear challenges; the gate looks at partition 0 every 50 rows and promotes
    linear at its third look (offset 250), applied at offset 251; then someone rolls back."""
    figures = {"rls": SpecFigures(300, 5.0, 4.0, 5.0, 4.0, role="champion"),
               "linear": SpecFigures(300, 3.0, 2.0, 3.0, 2.0)}
    looks = [gate_look(0, 150, 1, 52, ts=ts0), gate_look(0, 200, 2, 60, ts=ts0 + 1),
             gate_look(0, 250, 3, 80, promoted=True, ts=ts0 + 2)]
    return [comparison_record(ts0, figures), comparison_record(ts0 + 1000, figures), *looks,
            promotion_record("linear", "rls", 0, 251, ts0 + 3, reason="gate",
                             evidence=evidence_of(looks[-1])),
            promotion_record("rls", "linear", 0, 400, ts0 + 4, reason="rollback")]


def test_the_gate_the_decisions_and_the_rollback_button(
        monkeypatch: pytest.MonkeyPatch, kafka_settings: KafkaSettings, topics: Topics) -> None:
    produce_raw(kafka_settings, topics.raw, builtin("co2"), synthetic_rows(10))
    before = end_offsets(kafka_settings, topics.raw)
    LifecycleWriter(kafka_settings, topics).metrics(_history(int(time.time() * 1000) - 60_000))
    at = started_app(configure(monkeypatch, kafka_settings.bootstrap_servers, topics.prefix))
    at.switch_page("views/comparison.py").run()
    assert not at.exception, at.exception

    (line, lines), (level, levels), (rule, rules) = layers(at.get("vega_lite_chart")[2])
    assert (line["encoding"]["y"]["field"], level["encoding"]["y"]["field"]) == ("p_value", "alpha")
    assert list(lines["offset"]) == [150, 200, 250] and set(lines["challenger"]) == {"linear"}
    assert list(levels["look"]) == [1, 2, 3] and list(rules["offset"]) == [250]

    decisions = at.dataframe[3].value
    assert list(decisions["reason"]) == ["rollback", "gate"]
    gate = decisions.iloc[1]
    assert (gate["before"], gate["after"], gate["deciding offset"], gate["in effect after"]) == (
        "rls", "linear", 250, 251)
    assert (gate["wins"], gate["n"], gate["look"]) == (80, 100, 3)

    # The rollback offers the spec the gate replaced; unconfirmed, the button cannot be pressed.
    assert at.selectbox(key="rollback_spec").value == "rls"
    assert at.button(key="rollback_button").disabled
    at.checkbox(key="rollback_confirm").check().run()
    at.button(key="rollback_button").click().run()
    assert not at.exception and not at.error, texts(at.error)
    controls = sorted((p, o, Promotion.decode(v)) for k, v, p, o in
                      read_all(kafka_settings, topics.raw, expect=sum(before.values()) + 2, timeout=20)
                      if k == CONTROL_KEY_BYTES)
    assert [(p, o) for p, o, _ in controls] == sorted(before.items())  # one per partition, at its end
    assert {(c.version, c.spec, c.reason) for _, _, c in controls} == {("v1", "rls", "rollback")}
    assert "Rollback to `rls`" in " ".join(texts(at.success))
    assert at.checkbox(key="rollback_confirm").value is False  # every rollback needs its own tick
