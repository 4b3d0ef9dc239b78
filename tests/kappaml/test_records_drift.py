"""kappaml.records.DriftEvent: round trips, the processor's and the replay's detections, refusals."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from records_kit import assert_round_trip, reason_of, records

from kappaml.dataset import Dataset, Feature
from kappaml.drift import Detection, DriftConfig
from kappaml.learner import KeyState, StepResult
from kappaml.lineup import Lineup
from kappaml.records import DriftEvent, Example
from processor.outputs import drift_event
from spark_batch.rebuild import KeyReplay

OLD = {"key": "k", "version": "v1", "spec": "rls", "role": "champion", "generation": 1, "detector": "adwin",
       "policy": "reset", "action": "reset", "partition": 0, "offset": 99, "id": 100, "error_before": 0.5,
       "error_after": 3.25, "learned": 100, "event_ts": None, "ts": 1_700_000_000_000}


@settings(deadline=None)  # no timing asserted: a loaded machine is slow
@given(records(DriftEvent))
def test_every_drift_event_survives_a_round_trip(record: DriftEvent) -> None:
    assert_round_trip(record)


def _detection() -> tuple[KeyState, Example, StepResult]:
    ks = KeyState(key="k", spec="rls", version="v1", model=None, learned=40, generation=1)
    result = StepResult(y_true=1.0, y_pred=5.0, drift=Detection(detector="adwin", error_before=0.5,
                                                                 error_after=4.0, seen=40), reset=True)
    return ks, Example(id=40, key="k", x={}, y=1.0, ts=123), result


def test_the_processors_and_the_replays_detections_are_the_same_record() -> None:
    ks, example, result = _detection()
    live = drift_event(ks, example, result, 2, 39, "champion", ts=500)
    assert DriftEvent.decode(live.encode()) == live
    replay = KeyReplay(b"k", 2, Lineup(Dataset(name="d", features=(Feature("x", "numeric"),), target="y"),
                                       "rls", drift=DriftConfig(policy="reset")))
    summary = replay._drift(ks, example, result, 39, "champion")  # noqa: SLF001 - the replay's builder
    assert DriftEvent.from_dict(summary) == DriftEvent.from_dict({**live.to_dict(), "ts": None})
    assert "v" not in summary and "ts" not in summary  # the summary's shape is unchanged


def test_a_record_without_v_decodes() -> None:
    event = DriftEvent.from_dict(OLD)
    assert (event.error_after, event.event_ts, event.ts) == (3.25, None, 1_700_000_000_000)
    assert event.to_dict() == {"v": 1, **OLD}


@pytest.mark.parametrize(("value", "words"), [
    ({k: v for k, v in OLD.items() if k != "error_before"}, "lacks field(s) ['error_before']"),
    ({**OLD, "error_before": None}, "error_before must be a number"),
    ({**OLD, "learned": "100"}, "learned must be an integer"),
    ({**OLD, "v": 9}, "format version 9"),
    (b'"drift"', "drift event is not a JSON object"),
])
def test_bad_drift_events_are_refused_with_a_reason(value: object, words: str) -> None:
    assert words in reason_of(DriftEvent, value)
