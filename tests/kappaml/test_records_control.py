"""kappaml.records.Promotion, the control record: round trips, old records, refusals."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from records_kit import assert_round_trip, records

from kappaml.lineup import Promotion as FromLineup
from kappaml.records import InvalidRecord, Promotion


@settings(deadline=None)  # no timing asserted: a loaded machine is slow
# Empty version or spec and negative offsets are refused.
@given(records(Promotion).filter(lambda p: p.version and p.spec and (p.after is None or p.after >= 0)))
def test_every_promotion_survives_a_round_trip(record: Promotion) -> None:
    assert_round_trip(record)


def test_a_new_promotion_is_versioned_and_decodes() -> None:
    p = Promotion("v1", "linear")
    assert FromLineup is Promotion  # one class, where it always was too
    assert orjson.loads(p.encode())["v"] == 1 and orjson.loads(p.encode())["control"] == "promote"
    assert Promotion.decode(p.encode()) == p and p.id and p.by and p.ts > 0


def test_a_promotion_written_before_v_and_its_optional_fields_decodes() -> None:
    old = Promotion.decode(b'{"control":"promote","version":"v1","spec":"amf","id":"x","ts":5,"by":"me@h"}')
    assert old == Promotion("v1", "amf", id="x", ts=5, by="me@h")
    bare = Promotion.decode(b'{"control":"promote","version":"v1","spec":"amf"}')
    assert (bare.id, bare.ts, bare.by) == ("", 0, "")


@pytest.mark.parametrize(("value", "words"), [
    (b"{", "control record is not JSON"),
    (None, "control record is not JSON"),
    (b'{"control": "demote", "version": "v1", "spec": "a"}', "unknown control record"),
    (b'{"control": "promote", "version": "", "spec": "a"}', "needs non-empty string fields"),
    (b'{"control": "promote", "version": "v1", "spec": "a", "v": 2}', "format version 2"),
])
def test_bad_control_records_are_refused_with_a_reason(value: bytes | None, words: str) -> None:
    with pytest.raises(InvalidRecord, match=words):
        Promotion.decode(value)


def _evidence(**change) -> dict:
    ev = {"partition": 1, "offset": 812, "scored": 400, "serving": "rls", "pairs": 100, "n": 98, "wins": 75,
          "p_value": 1e-7, "look": 12, "alpha": 3.2e-4, "mse_serving": 9.8e3, "mse_challenger": 6.5e3,
          "confidence": 0.95, "margin": 0.05, "window": 100}
    return {**ev, **change}


def test_a_gate_promotion_carries_its_reason_and_evidence() -> None:
    data = {"v": 1, "control": "promote", "version": "v1", "spec": "linear", "id": "gate-v1-1-812",
            "reason": "gate", "evidence": _evidence()}
    p = Promotion.decode(orjson.dumps(data))
    assert p.reason == "gate" and p.evidence is not None and p.evidence.wins == 75
    assert Promotion.decode(p.encode()) == p
    rollback = Promotion("v1", "rls", reason="rollback")
    assert Promotion.decode(rollback.encode()).reason == "rollback"
    assert "reason" not in orjson.loads(Promotion("v1", "rls").encode())  # a manual promote: as before


@pytest.mark.parametrize("change,words", [
    ({"reason": 3}, "reason"),
    ({"evidence": "strong"}, "evidence"),
    ({"evidence": _evidence(wins="many")}, "evidence: wins must be an integer"),
    ({"evidence": {"partition": 1}}, "evidence"),
])
def test_a_promotion_with_bad_reason_or_evidence_is_refused(change, words) -> None:
    data = {"control": "promote", "version": "v1", "spec": "linear", **change}
    with pytest.raises(InvalidRecord, match=words):
        Promotion.decode(orjson.dumps(data))
