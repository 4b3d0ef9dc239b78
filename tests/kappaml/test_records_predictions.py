"""kappaml.records.Prediction: round trips, the processor's own records, and refusals with reasons."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from records_kit import assert_round_trip, reason_of, records

from kappaml.learner import KeyState, Served, StepResult
from kappaml.records import Example, InvalidRecord, Prediction, Record, ServedPrediction
from processor.outputs import encode_scored_prediction, encode_served_prediction, prediction

# A prediction exactly as the processor wrote them before records carried "v" (the log holds these).
OLD = {"key": "__all__", "id": 7, "y_true": 250.0, "y_pred": 249.5, "error": -0.5, "version": "v1",
       "spec": "rls", "partition": 2, "offset": 41, "event_ts": 1_700_000_000_000,
       "processed_ts": 1_700_000_000_050, "role": "champion", "generation": 0}


@settings(deadline=None)  # no timing asserted: a loaded machine is slow
@given(records(Prediction))
def test_every_prediction_survives_a_round_trip(record: Prediction) -> None:
    assert_round_trip(record)
    # The hand-written encoder of the hot path writes exactly what the generic one would.
    assert record.to_dict() == Record.to_dict(record)


def _written(pass_no: int = 1, ts: int | None = 5) -> Prediction:
    ks = KeyState(key="k", spec="rls", version="v1", model=None)
    example = Example(id="r-1", key="k", x={}, y=3.0, ts=ts, pass_no=pass_no)
    return prediction(ks, example, StepResult(y_true=3.0, y_pred=2.5, generation=1), 0, 9, 20, "challenger")


def test_the_processors_prediction_decodes_to_what_it_built() -> None:
    for record in (_written(), _written(pass_no=3), _written(ts=None)):
        assert Prediction.decode(record.encode()) == record
    assert "pass" not in orjson.loads(_written().encode())  # the first pass writes none
    assert orjson.loads(_written(pass_no=3).encode())["pass"] == 3
    assert _written().latency_ms == 15 and _written(ts=None).latency_ms is None


def test_a_record_without_v_is_version_1() -> None:
    record = Prediction.from_dict(OLD)
    assert (record.y_pred, record.event_ts, record.pass_no) == (249.5, 1_700_000_000_000, None)
    assert record.to_dict() == {"v": 1, **OLD}
    assert Prediction.from_dict({**OLD, "pass": 2, "delay_ms": 5}).pass_no == 2  # unknown fields: ignored


@pytest.mark.parametrize(("value", "words"), [
    (b"not json", "prediction is not JSON"),
    (None, "prediction is empty"),
    (b"[1, 2]", "prediction is not a JSON object"),
    ({k: v for k, v in OLD.items() if k != "y_pred"}, "lacks field(s) ['y_pred']"),
    ({**OLD, "y_pred": "249.5"}, "y_pred must be a number"),
    ({**OLD, "y_pred": True}, "y_pred must be a number"),
    ({**OLD, "offset": 1.5}, "offset must be an integer"),
    ({**OLD, "event_ts": "yesterday"}, "event_ts must be an integer or null"),
    ({**OLD, "id": None}, "id must be an integer or a string"),
    ({**OLD, "v": 2}, "format version 2, newer than this reader knows (1)"),
    ({**OLD, "v": "1"}, "v must be a positive integer"),
    ({**OLD, "v": 0}, "v must be a positive integer"),
])
def test_bad_predictions_are_refused_with_a_reason(value: object, words: str) -> None:
    assert words in reason_of(Prediction, value)


def test_records_are_frozen() -> None:
    with pytest.raises(AttributeError):
        _written().y_pred = 1.0  # type: ignore[misc]
    with pytest.raises(InvalidRecord):
        Prediction.decode(b'{"v": 1}')


def _scored(result: StepResult, role: str = "champion", event_ts: int | None = 5) -> Prediction:
    """The record the processor's encoder stands for, built field by field from the result."""
    delayed = result.served_offset is not None
    return Prediction(key="k", id=result.id if result.id is not None else "", y_true=result.y_true,
                      y_pred=result.y_pred, error=result.error, version="v1", spec="rls", partition=1,
                      offset=9, event_ts=event_ts, processed_ts=20, role=role, generation=result.generation,
                      pass_no=result.pass_no if result.pass_no > 1 else None, delay_ms=result.delay_ms,
                      delay_rows=result.delay_rows if delayed else None, served_offset=result.served_offset,
                      expired=True if result.expired else None)


def test_the_processors_encoders_write_the_records_bytes() -> None:
    ks = KeyState(key="k", spec="rls", version="v1", model=None)
    results = [StepResult(y_true=3.0, y_pred=2.5, generation=1, id=7),
               StepResult(y_true=3.0, y_pred=2.5, id=None, pass_no=3),
               StepResult(y_true=1.0, y_pred=0.5, id="r", delay_ms=40, delay_rows=3, served_offset=2,
                          served_ts=1),
               StepResult(y_true=0.0, y_pred=0.5, id=8, delay_ms=None, delay_rows=21, served_offset=4,
                          expired=True),
               StepResult(y_true=1.0, y_pred=0.5, id=9, delay_ms=12)]  # a delay without its features' offset
    for result in results:
        for role, ts in (("champion", 5), ("challenger", None)):
            expected = _scored(result, role, ts)
            written = encode_scored_prediction(ks, result, 1, 9, 20, role, ts)
            # The generic encoder of the record's fields, in their declared order: not the hand-written one.
            assert written == orjson.dumps(Record.to_dict(expected)) == expected.encode()
            assert Prediction.decode(written) == expected
    served = Served(id="r", stream="", y_pred=2.5, generation=2, ts=None, pass_no=2)
    expected_served = ServedPrediction(key="k", id="r", y_pred=2.5, version="v1", spec="rls", partition=1,
                                       offset=9, event_ts=None, processed_ts=20, role="challenger",
                                       generation=2, pass_no=2)
    written = encode_served_prediction(ks, served, 1, 9, 20, "challenger")
    assert written == orjson.dumps(Record.to_dict(expected_served)) == expected_served.encode()
