"""Pure parts of the UI: feed positions, bounded series, the generated form, chart frames."""

from __future__ import annotations

import math

import pytest

from kappaml.dataset import Dataset, Feature, builtin
from kappaml.records import InvalidRecord, KeyMetrics, OverallMetrics, Prediction
from ui.form import NONE_OF_THESE, form_fields, to_example
from ui.frames import metrics_frame, model_keys, predictions_frame
from ui.position import Position, parse_position
from ui.store import OVERALL_KEY, Series


# ----------------------------------------------------------------------------- positions
def test_position_round_trip_and_order() -> None:
    position = Position.of({3: 77, 0: 124, 1: 98})
    assert position.encode() == "0:124,1:98,3:77"
    assert parse_position(position.encode()) == position
    assert parse_position(" 0:1 , 2:0 ").as_dict() == {0: 1, 2: 0}


@pytest.mark.parametrize("text, message", [
    ("", "empty"),
    ("garbage", "partition:offset"),
    ("0:1,", "partition:offset"),
    ("0:-1", "partition:offset"),
    ("1:2,1:3", "twice"),
    ("0:99999999999999999999", "partition:offset"),
    ("0:9223372036854775808", "out of range"),
    ("x" * 5000, "longer than"),
])
def test_bad_positions_are_refused_with_a_reason(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_position(text)


# ----------------------------------------------------------------------------- series
def test_series_thins_old_points_and_keeps_recent_ones() -> None:
    series = Series(cap=100)
    for i in range(1000):
        series.append({"i": i})
    values = [p["i"] for p in series.points]
    assert len(series) <= 100
    assert values[0] == 0 and values[-1] == 999  # the whole span is still there
    assert values == sorted(values)
    assert values[-40:] == list(range(960, 1000))  # the newest at full resolution
    with pytest.raises(ValueError):
        Series(cap=2)


# ----------------------------------------------------------------------------- form
def test_co2_form_groups_the_fuel_type_columns_into_one_choice() -> None:
    dataset = builtin("co2")
    fields = form_fields(dataset)
    kinds = {f.name: f.kind for f in fields}
    choices = [f for f in fields if f.kind == "choice"]
    assert len(choices) == 1
    fuel = choices[0]
    assert [label for label, _ in fuel.options] == ["D", "E", "N", "X", "Z"]
    booleans = {f.name for f in dataset.features if f.kind == "boolean"}
    assert not booleans & set(kinds)  # no loose one-hot checkboxes left
    numerics = [f for f in fields if f.kind == "numeric"]
    assert len(numerics) == len([f for f in dataset.features if f.kind == "numeric"])
    assert all(f.unit == dataset.units.get(f.name) for f in numerics)


def _co2_values(dataset: Dataset, fuel: str = "Z", **overrides: float | None) -> dict[str, object]:
    values: dict[str, object] = {f.name: 2.0 for f in form_fields(dataset) if f.kind == "numeric"}
    group = next(f for f in form_fields(dataset) if f.kind == "choice")
    values[group.name] = fuel
    values.update(overrides)
    return values


def test_form_values_become_the_pipelines_features() -> None:
    dataset = builtin("co2")
    fields = form_fields(dataset)
    example = to_example(dataset, fields, _co2_values(dataset, fuel="X"))
    assert list(example.x) == list(dataset.feature_names)
    group = next(f for f in fields if f.kind == "choice")
    for label, name in group.options:
        assert example.x[name] == (1.0 if label == "X" else 0.0)
    none = to_example(dataset, fields, _co2_values(dataset, fuel=NONE_OF_THESE))
    assert all(none.x[name] == 0.0 for _l, name in group.options)


def test_form_rejects_missing_and_non_finite_numbers_naming_the_field() -> None:
    dataset = builtin("co2")
    fields = form_fields(dataset)
    first = next(f.name for f in fields if f.kind == "numeric")
    with pytest.raises(InvalidRecord, match="required") as missing:
        to_example(dataset, fields, _co2_values(dataset, **{first: None}))
    assert missing.value.column == first
    with pytest.raises(InvalidRecord, match="not finite") as infinite:
        to_example(dataset, fields, _co2_values(dataset, **{first: float("inf")}))
    assert infinite.value.column == first
    group = next(f for f in fields if f.kind == "choice")
    with pytest.raises(InvalidRecord, match="choose one of"):
        to_example(dataset, fields, _co2_values(dataset, fuel="diesel"))
    assert group.name


def test_form_of_a_keyed_dataset_with_categories() -> None:
    dataset = Dataset(name="fleet", features=(Feature("speed"), Feature("road", "categorical"),
                                              Feature("wet", "boolean")),
                      target="fuel", key="vehicle", units={"speed": "km/h"})
    fields = form_fields(dataset)
    assert [f.kind for f in fields] == ["key", "numeric", "categorical", "boolean"]
    example = to_example(dataset, fields, {"vehicle": " truck-7 ", "speed": 80.0, "road": "A1", "wet": True})
    assert example.key == "truck-7"
    assert example.x == {"speed": 80.0, "road": "A1", "wet": 1.0}
    with pytest.raises(InvalidRecord, match="required") as err:
        to_example(dataset, fields, {"vehicle": "", "speed": 80.0, "road": "A1", "wet": False})
    assert err.value.column == "vehicle"
    with pytest.raises(InvalidRecord, match="non-empty"):
        to_example(dataset, fields, {"vehicle": "t", "speed": 80.0, "road": "   ", "wet": False})


# ----------------------------------------------------------------------------- frames
def test_metrics_frame_is_long_per_version_and_skips_undefined_values() -> None:
    base = {"key": "k", "spec": "rls", "mae": 1.0, "rolling_rmse": 2.5, "rolling_mae": 1.5,
            "rolling_r2": None, "r2": None}
    series = {
        ("v1", "k", "rls"): [KeyMetrics(**base, version="v1", learned=10, n=10, rmse=3.0, ts=1_000)],
        ("v2", "k", "rls"): [KeyMetrics(**base, version="v2", learned=20, n=20, rmse=2.0, ts=2_000)],
        ("v1", OVERALL_KEY, "rls"): [OverallMetrics(version="v1", spec="rls", learned=10, rmse=3.0, ts=1)],
    }
    frame = metrics_frame(series, "k")
    assert set(frame["version"]) == {"v1", "v2"}
    assert set(frame["model"]) == {"v1", "v2"}  # one spec per version: named by the version
    assert set(frame["metric"]) == {"RMSE", "MAE"}  # R² is None everywhere: left out
    rmse = frame[(frame["metric"] == "RMSE") & (frame["window"] == "cumulative")]
    assert sorted(rmse["value"]) == [2.0, 3.0]
    assert sorted(rmse["messages"]) == [10, 20]
    overall = metrics_frame(series, OVERALL_KEY)
    assert list(overall["messages"]) == [10]  # overall records count ``learned``
    assert model_keys(series.keys()) == [OVERALL_KEY, "k"]


def test_predictions_frame_filters_and_drops_unusable_records() -> None:
    def written(key: str, version: str, row_id: int, y_true: float, y_pred: float) -> Prediction:
        return Prediction(key=key, version=version, id=row_id, y_true=y_true, y_pred=y_pred,
                          error=y_pred - y_true, spec="rls", partition=0, offset=row_id, event_ts=1,
                          processed_ts=5, role="champion", generation=0)

    records = [written("a", "v1", 1, 10.0, 12.0), written("b", "v1", 2, 10.0, math.nan),
               written("a", "v2", 3, math.inf, 1.0)]
    # Records that are not predictions never get this far: the reader counts them unreadable.
    for bad in ({**records[0].to_dict(), "y_pred": None}, {**records[0].to_dict(), "y_true": "x"}):
        with pytest.raises(InvalidRecord):
            Prediction.from_dict(bad)
    frame = predictions_frame(records)
    assert list(frame["id"]) == ["1"]
    assert list(frame["error"]) == [2.0]
    assert list(frame["latency_ms"]) == [4]
    assert predictions_frame(records, version="v2").empty


# ----------------------------------------------------------------------------- settings
def test_settings_from_env_and_script_arguments() -> None:
    from ui.settings import UISettings, script_overrides

    env = {"KAPPAML_KAFKA_BOOTSTRAP_SERVERS": "k:1", "KAPPAML_TOPIC_PREFIX": "p1"}
    assert UISettings.from_env(env).kafka.bootstrap_servers == "k:1"
    overrides = script_overrides(["--bootstrap", "k:2", "--dataset", "co2"])
    settings = UISettings.from_env({**env, **overrides})
    assert (settings.kafka.bootstrap_servers, settings.prefix, settings.dataset_name) == ("k:2", "p1", "co2")
    assert settings.processor_group("v7") == "p1-processor-v7"
    with pytest.raises(ValueError, match="unknown script arguments"):
        script_overrides(["--nope", "1"])
    with pytest.raises(ValueError, match="prefix"):
        UISettings.from_env({"KAPPAML_TOPIC_PREFIX": "a b"})


def test_the_latest_snapshot_of_a_key_is_a_live_one_when_there_is_one() -> None:
    from kappaml.records.snapshots import SnapshotHeader
    from ui.snapshots import SnapshotChoice, pick
    from ui.store import SnapshotRef

    def choice(label: str, key: str, created: int) -> SnapshotChoice:
        header = SnapshotHeader(key=key, version=label, spec="rls", origin="live", partition=0, offset=0,
                                learned=1, fingerprint="0" * 64, created_at=created, extra={})
        return SnapshotChoice(SnapshotRef(label, key, 0, created, b"", 0.0), header)

    newest_first = [choice("v1@replay", "k", 3), choice("v1", "k", 2), choice("v1", "j", 1)]
    assert pick(newest_first, "latest", "k", latest="latest").ref.version == "v1"
    assert pick(newest_first, "v1@replay", "k", latest="latest").ref.version == "v1@replay"
    assert pick(newest_first[:1], "latest", "k", latest="latest").ref.version == "v1@replay"
    assert pick(newest_first, "v2", "k", latest="latest") is None
