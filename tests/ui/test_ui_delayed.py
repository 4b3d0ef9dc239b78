"""The UI with delayed labels, without a broker: the frames of the Evaluation and Predictions pages
over what a processor writes (computed with the core's ``apply_record``), and the reader's decoding.
The pages themselves against the real broker: test_ui_delayed_pages.py."""

from __future__ import annotations

import pytest
from ui_testkit import delayed_run, synthetic_rows

from kappaml.dataset import GLOBAL_KEY, builtin
from kappaml.records import Prediction, ServedPrediction, decode_prediction
from ui.frames import (
    EXPIRED,
    LABELLED,
    WAITING,
    delay_histogram_frame,
    delay_quantiles_frame,
    delayed_counts_frame,
    delayed_summary_frame,
    predictions_frame,
    served_frame,
)
from ui.store import OVERALL_KEY, LiveStore

CO2 = builtin("co2")


def stored(run):  # type: ignore[no-untyped-def]
    store = LiveStore()
    predictions = []
    for role, _key, record in run.records:
        if role == "metrics":
            store.add_metrics(record)
        else:
            # What the reader does with a message of the predictions topic.
            predictions.append(decode_prediction(record.encode()))
    store.add_predictions(predictions)
    return store.view()


@pytest.mark.parametrize("on_missing", ["drop", "learn=0"])
def test_served_predictions_are_marked_until_their_label_comes(on_missing: str) -> None:
    run = delayed_run(CO2, synthetic_rows(120), delay=10, drop={5, 17, 33}, ttl="30", on_missing=on_missing)
    view = stored(run)
    assert {type(p) for p in view.predictions} == {Prediction, ServedPrediction}
    served = served_frame(view.predictions)
    labels = run.state.labels
    assert len(served) == labels.served == 120
    status = served.set_index("id")["status"]
    assert (status == LABELLED).sum() == labels.paired == 120 - 10 - 3
    # The last ten rows' labels have not come: still waiting.
    assert set(status.loc[[str(i) for i in range(111, 121)]]) == {WAITING}
    if on_missing == "learn=0":
        # Expired: scored against the missing-label value, marked as such.
        assert list(status.loc[["5", "17", "33"]]) == [EXPIRED] * 3
        assert (served.set_index("id").loc[["5", "17", "33"], "y_true"] == 0.0).all()
    else:
        # Dropped: no record says so; with the processor's TTL (its overall metrics) they are
        # marked expired once they have waited longer, by the predictions of their key read.
        assert list(status.loc[["5", "17", "33"]]) == [WAITING] * 3
        with_ttl = served_frame(view.predictions, ttl={"v1": "30"}).set_index("id")["status"]
        assert list(with_ttl.loc[["5", "17", "33"]]) == [EXPIRED] * 3
        assert set(with_ttl.loc[[str(i) for i in range(111, 121)]]) == {WAITING}
        assert (with_ttl == EXPIRED).sum() == labels.expired == 3
        assert served_frame(view.predictions, ttl={"v1": "none"}).equals(served)
    labelled = served[served["status"] == LABELLED]
    assert (labelled["delay_rows"] > 0).all() and labelled["y_true"].notna().all()
    # The scored predictions keep the delay; the served ones are not scored.
    scored = predictions_frame(view.predictions)
    assert len(scored) == labels.paired + (3 if on_missing == "learn=0" else 0)
    assert scored["delay_rows"].notna().all()
    assert scored["expired"].sum() == (3 if on_missing == "learn=0" else 0)


def test_delayed_figures_of_the_evaluation_page() -> None:
    run = delayed_run(CO2, synthetic_rows(150), delay=20, drop={3, 40, 41, 90}, ttl="60", on_missing="drop")
    view = stored(run)
    figures = run.state.labels.figures()
    for key in (GLOBAL_KEY, OVERALL_KEY):
        summary = delayed_summary_frame(view.metrics, key)
        assert len(summary) == 1
        row = summary.iloc[0]
        assert (row["served"], row["learned"], row["expired"], row["pending"]) == (
            figures["features_served"], figures["labels_learned"], figures["expired"], figures["pending"])
        assert row["balanced"] and row["served"] == 150
        assert row["expired"] > 0 and row["pending"] > 0
        assert row["delay p50 (records)"] == figures["delay_rows"]["p50"]
        assert row["delay p95 (s)"] == pytest.approx(figures["delay_ms"]["p95"] / 1000)
    assert delayed_summary_frame(view.metrics, OVERALL_KEY).iloc[0]["label TTL"] == "60"
    counts = delayed_counts_frame(view.metrics, GLOBAL_KEY)
    assert set(counts["count"]) == {"pending", "expired"}
    last = counts[counts["messages"] == 150].set_index("count")["value"]
    assert (last["pending"], last["expired"]) == (figures["pending"], figures["expired"])
    quantiles = delay_quantiles_frame(view.metrics, GLOBAL_KEY, "rows")
    assert set(quantiles["quantile"]) == {"p50", "p95", "p99"}
    assert not delay_quantiles_frame(view.metrics, GLOBAL_KEY, "ms").empty
    histogram = delay_histogram_frame(view.predictions)
    assert len(histogram) == figures["labels_learned"]
    # Rows' labels come 20 rows later: 20 features and up to 20 labels of the key in between.
    assert histogram["delay_rows"].between(20, 41).all()
    assert histogram["delay_s"].between(2.0, 2.1).all()


def test_no_delay_and_no_data() -> None:
    run = delayed_run(CO2, synthetic_rows(30), delay=0)
    view = stored(run)
    # delay 0: every label right after its features, nothing pending at the end.
    assert delayed_summary_frame(view.metrics, GLOBAL_KEY).iloc[0]["pending"] == 0
    assert delayed_summary_frame({}, GLOBAL_KEY).empty
    assert served_frame([]).empty and delay_histogram_frame([]).empty


def test_a_ttl_in_seconds_marks_by_event_time() -> None:
    # Rows 100 ms apart; labels 10 rows (1 s) late; 2 s of TTL: the dropped ones expire.
    run = delayed_run(CO2, synthetic_rows(80), delay=10, drop={20, 50}, ttl="2s", on_missing="drop")
    view = stored(run)
    status = served_frame(view.predictions, ttl={"v1": "2s"}).set_index("id")["status"]
    assert list(status.loc[["20", "50"]]) == [EXPIRED] * 2 == [EXPIRED] * run.state.labels.expired
    assert set(status.loc[[str(i) for i in range(71, 81)]]) == {WAITING}
