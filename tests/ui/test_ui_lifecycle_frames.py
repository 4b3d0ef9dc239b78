"""Pure parts of the lifecycle views: model names, drift positions, comparisons, promotable specs."""

from __future__ import annotations

from ui_lifecycle_kit import SpecFigures, comparison_record, drift_record, promotion_record

from infra.testing import free_port
from kappaml.kafka import KafkaSettings
from kappaml.records import KeyMetrics, OverallMetrics
from ui.frames import latest_metrics_frame, model_labels
from ui.lifecycle import (
    champions_frame,
    comparison_frame,
    comparison_instances,
    drift_marks,
    latest_comparison_frame,
    promotable,
    promotions_frame,
)
from ui.promote import promote
from ui.store import OVERALL_KEY, LiveStore


def _figures(role: str, rmse: float = 1.0) -> SpecFigures:
    return SpecFigures(10, rmse, rmse, rmse, rmse, role=role)


def test_challenger_series_are_named_like_their_snapshots() -> None:
    keys = [("v1", OVERALL_KEY, "rls"), ("v1", "k", "rls"), ("v1", "k", "linear"), ("v2", "k", "amf")]
    assert model_labels(keys) == {("v1", "rls"): "v1", ("v1", "linear"): "v1+linear", ("v2", "amf"): "v2"}
    # Without an overall record the spec the version was started with is unknown.
    assert model_labels([("v3", "k", "a"), ("v3", "k", "b")]) == {("v3", "a"): "v3+a", ("v3", "b"): "v3+b"}
    series = {k: [KeyMetrics(key=k[1], version=k[0], spec=k[2], learned=5, n=5, rmse=1.0, role="challenger",
                             drifts=2, ts=1)] for k in keys}
    table = latest_metrics_frame(series, "k")
    assert list(table["model"]) == ["v1+linear", "v1", "v2"] and list(table["drifts"]) == [2, 2, 2]


def test_the_store_keeps_lifecycle_records_apart_and_bounded() -> None:
    store = LiveStore(drift_cap=3, promotions_cap=2)
    store.add_metrics(comparison_record(1, {"rls": _figures("champion")}))
    store.add_metrics(KeyMetrics(key="k", version="v1", spec="rls", learned=0, ts=1))
    store.add_metrics(KeyMetrics(key="k", version="v1", spec="linear", learned=0, ts=1))
    for p in range(3):
        store.add_metrics(promotion_record("linear", "rls", p, 7, ts=2))
    for learned in range(5):
        store.add_drift(drift_record("k", learned=learned, ts=learned, error_before=1, error_after=2))
    view = store.view()
    assert set(view.metrics) == {("v1", "k", "rls"), ("v1", "k", "linear")}
    assert list(view.comparisons) == ["v1"]
    assert [r.partition for r in view.promotions] == [1, 2]
    assert [r.learned for r in view.drifts] == [2, 3, 4]


def test_drift_marks_on_the_overall_axis_sit_at_the_overall_count_before_them() -> None:
    overall = [OverallMetrics(version="v1", spec="rls", learned=n, ts=n * 10) for n in (100, 200, 300)]
    series = {("v1", OVERALL_KEY, "rls"): overall}
    records = [drift_record("a", learned=5, ts=1000 + 5, error_before=1, error_after=3),
               drift_record("b", learned=9, ts=2500, error_before=1, error_after=3),
               drift_record("c", learned=1, ts=50, error_before=1, error_after=3)]  # before any overall
    marks = drift_marks(records, series, OVERALL_KEY).set_index("key")
    assert marks.loc["a", "messages"] == 100 and marks.loc["b", "messages"] == 200
    assert marks["messages"].isna().sum() == 1
    assert list(drift_marks(records, series, "b")["messages"]) == [9]
    assert drift_marks(records, {}, OVERALL_KEY)["messages"].isna().all()


def test_comparison_frames_per_instance_and_the_champions_of_each_partition() -> None:
    records = [
        comparison_record(1, {"rls": _figures("champion", 3.0), "linear": _figures("challenger", 2.0)},
                          instance="a"),
        comparison_record(2, {"rls": _figures("champion", 4.0), "linear": _figures("champion", 1.0)},
                          instance="b", champions={10: "linear", 2: "rls"}),
        comparison_record(3, {"rls": _figures("champion", 5.0)}, instance="a", champions={2: "linear"}),
    ]
    assert comparison_instances(records) == ["a", "b"]
    assert set(comparison_frame(records, "b")["value"]) == {4.0, 1.0}
    assert list(champions_frame(records)["partition"]) == ["2", "10"]  # numeric order
    assert list(champions_frame(records)["champion"]) == ["linear", "linear"]
    table = latest_comparison_frame(records, "b")
    assert list(table["spec"]) == ["rls", "linear"] and list(table["champion of partitions"]) == ["2", "10"]
    assert promotable(records) == ["rls"]
    # No per-partition map yet: every partition is the champion's.
    fresh = [comparison_record(1, {"rls": _figures("champion"), "linear": _figures("challenger")})]
    assert champions_frame(fresh).to_dict("records") == [{"partition": "all", "champion": "rls"}]
    assert promotable(fresh) == ["linear"] and promotable([]) == []
    assert list(latest_comparison_frame(fresh)["champion of partitions"]) == ["all", "-"]
    assert promotions_frame([promotion_record("x", "y", 0, 1, 5, version="v2")], "v1").empty


def test_promote_says_in_one_line_that_kafka_is_unreachable() -> None:
    down = KafkaSettings(bootstrap_servers=f"127.0.0.1:{free_port()}")
    outcome = promote(down, "t.raw", "v1", "linear", timeout=1.0)
    assert outcome.offsets is None and outcome.promotion.spec == "linear"
    assert outcome.error is not None and "did not answer" in outcome.error and "\n" not in outcome.error
