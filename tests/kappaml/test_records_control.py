"""kappaml.records.Promotion, the control record: round trips, old records, refusals."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from records_kit import assert_round_trip, records

from kappaml.lineup import Promotion as FromLineup
from kappaml.records import InvalidRecord, Promotion


@settings(deadline=None)  # no timing asserted: a loaded machine is slow
@given(records(Promotion).filter(lambda p: p.version and p.spec))  # empty ones are refused
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
