"""Champion/challenger line-ups and promotions: validation and who serves which offset."""

from __future__ import annotations

import pytest

from kappaml.dataset import builtin
from kappaml.lineup import Lineup, Promotion, PromotionLog, ServingHistory, rollback_promotion
from kappaml.models import SPECS
from kappaml.records import InvalidRecord

DS = builtin("co2")


def test_lineup_builds_one_state_per_spec() -> None:
    lineup = Lineup(DS, "rls", ("linear", "amf"), version="v3")
    states = lineup.new_states("k")
    assert list(states) == ["rls", "linear", "amf"]
    assert {(s.spec, s.version, s.key) for s in states.values()} == {
        ("rls", "v3", "k"), ("linear", "v3", "k"), ("amf", "v3", "k")}
    assert all(s.drift is not None for s in states.values())


@pytest.mark.parametrize("champion, challengers", [("nope", ()), ("rls", ("rls",)), ("rls", ("x",))])
def test_bad_lineups_are_rejected(champion: str, challengers: tuple[str, ...]) -> None:
    with pytest.raises(ValueError):
        Lineup(DS, champion, challengers)


def test_promotion_round_trip_and_bad_control_records() -> None:
    p = Promotion("v1", "amf")
    assert Promotion.decode(p.encode()) == p
    for bad in (b"", b"{", b"[]", b'{"control": "demote"}', b'{"control": "promote", "spec": "amf"}'):
        with pytest.raises(InvalidRecord):
            Promotion.decode(bad)


def test_serving_history_follows_promotions_of_its_own_version() -> None:
    history = ServingHistory(Lineup(DS, "rls", ("amf",), version="v1"))
    assert history.champion(0) == "rls"
    assert history.apply(0, Promotion("v2", "amf")) == ""  # another version's: nothing to do
    assert history.champion(0) == "rls"
    assert "cannot promote 'linear'" in (history.apply(0, Promotion("v1", "linear")) or "")
    assert history.apply(0, Promotion("v1", "amf")) is None
    assert (history.champion(0), history.champion(1)) == ("amf", "rls")


def test_promotion_log_tells_who_served_each_offset() -> None:
    lineup = Lineup(DS, "rls", ("amf", "linear"), version="v1")
    log = PromotionLog(lineup, [
        (0, 50, Promotion("v1", "amf").encode()),
        (0, 10, b"not json"),
        (1, 5, Promotion("v9", "amf").encode()),
        (0, 80, Promotion("v1", "linear").encode()),
    ])
    assert [log.champion_at(0, o) for o in (0, 49, 50, 51, 80, 81, 10**9)] == [
        "rls", "rls", "rls", "amf", "amf", "linear", "linear"]
    assert log.champion_at(1, 100) == "rls"
    assert [(p, o) for p, o, _ in log.problems] == [(0, 10)]


def test_a_gate_promotion_serves_from_the_offset_it_was_decided_at() -> None:
    # The gate decided at offset 40 and switched there; its record landed at 90, behind the rows
    # written meanwhile. A manual promotion at 60 came in between: it still wins from 61 on.
    lineup = Lineup(DS, "rls", ("amf", "linear"), version="v1")
    gate = Promotion("v1", "linear", reason="gate", after=40)
    log = PromotionLog(lineup, [(0, 90, gate.encode()), (0, 60, Promotion("v1", "amf").encode()),
                                (0, 95, gate.encode())])  # an at-least-once duplicate of it
    assert [log.champion_at(0, o) for o in (40, 41, 60, 61, 90, 96)] == [
        "rls", "linear", "linear", "amf", "amf", "amf"]
    assert Promotion.decode(gate.encode()).after == 40 and "after" not in Promotion("v1", "amf").to_dict()
    # An "after" not before the record itself changes nothing: it serves after the record.
    assert Promotion("v1", "amf", after=500).effective_after(90) == 90
    for bad in (-1, "3", True):
        with pytest.raises(InvalidRecord, match="after"):
            Promotion.decode(b'{"control": "promote", "version": "v1", "spec": "amf", "after": %s}'
                             % str(bad).lower().encode() if bad != "3" else
                             b'{"control": "promote", "version": "v1", "spec": "amf", "after": "3"}')


def test_a_rollback_is_a_promotion_with_reason_rollback() -> None:
    # The one record `processor rollback --to` and the UI's Rollback button both write.
    cli, ui = rollback_promotion("v1", "rls"), rollback_promotion("v1", "rls", by="ui me@host")
    assert (cli.version, cli.spec, cli.reason, cli.evidence) == ("v1", "rls", "rollback", None)
    assert "@" in cli.by and ui.by == "ui me@host" and ui.reason == "rollback" and cli.id != ui.id
    assert Promotion.decode(ui.encode()) == ui


def test_challengers_default_to_the_auto_set_only_with_auto_promotion() -> None:
    from kappaml.lineup import AUTO_SPECS, auto_challengers, resolve_challengers

    assert AUTO_SPECS[0] == "rls" and all(s in SPECS for s in AUTO_SPECS)
    assert resolve_challengers("", "manual", "rls") == ()  # today's default, unchanged
    assert resolve_challengers("", "auto", "rls") == ("hoeffding", "linear") == auto_challengers("rls")
    assert resolve_challengers("", "auto", "linear") == ("rls", "hoeffding")  # never the champion twice
    assert resolve_challengers(" amf , linear", "auto", "rls") == ("amf", "linear")  # given ones win
    assert resolve_challengers("none", "auto", "rls") == resolve_challengers(" none ", "manual", "rls") == ()
    Lineup(DS, "linear", resolve_challengers("", "auto", "linear"))  # a valid line-up
