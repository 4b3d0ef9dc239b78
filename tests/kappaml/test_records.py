"""kappaml.records: CSV text -> typed row -> raw JSON -> Example, and every way it can fail."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kappaml.dataset import GLOBAL_KEY, Dataset, Feature, builtin
from kappaml.records import (
    Example,
    InvalidRecord,
    decode,
    encode_record,
    extract,
    make_record,
    parse_row,
)

KEYED = Dataset(
    name="cars",
    features=(Feature("size", "numeric"), Feature("make", "categorical"), Feature("turbo", "boolean")),
    target="price",
    key="region",
    id_column="vin",
)


def fields(**overrides: str) -> dict[str, str]:
    base = {"size": "2.0", "make": "VW", "turbo": "True", "price": "20000", "region": "EU", "vin": "A1"}
    base.update(overrides)
    return base


def test_parse_row_types_values_in_declaration_order() -> None:
    row = parse_row(KEYED, fields(size=" 1.5e0 ", make=" BMW "), row=3)
    assert row == {"size": 1.5, "make": "BMW", "turbo": True, "price": 20000.0, "region": "EU", "vin": "A1"}
    assert list(row) == ["size", "make", "turbo", "price", "region", "vin"]


@pytest.mark.parametrize(
    ("overrides", "column", "reason"),
    [
        ({"size": ""}, "size", "missing value"),
        ({"size": "abc"}, "size", "value is not a number"),
        ({"size": "nan"}, "size", "value is not finite"),
        ({"size": "-Infinity"}, "size", "value is not finite"),
        ({"size": "1e999"}, "size", "value is out of range"),
        ({"size": "1_000"}, "size", "value is not a number"),
        ({"size": "0x10"}, "size", "value is not a number"),
        ({"size": "\ufeff2.0"}, "size", "value is not a number"),
        ({"turbo": "maybe"}, "turbo", "not a boolean (True/False/1/0)"),
        ({"turbo": " "}, "turbo", "missing value"),
        ({"make": "  "}, "make", "missing category"),
        ({"price": ""}, "price", "missing target"),
        ({"price": "cheap"}, "price", "target is not a number"),
        ({"region": ""}, "region", "missing key"),
        ({"vin": ""}, "vin", "missing id"),
    ],
)
def test_parse_row_rejects_bad_values_precisely(overrides: dict[str, str], column: str, reason: str) -> None:
    with pytest.raises(InvalidRecord) as info:
        parse_row(KEYED, fields(**overrides), row=7)
    err = info.value
    assert (err.row, err.column, err.reason) == (7, column, reason)
    assert err.value == overrides[column]
    assert "row 7" in str(err) and column in str(err)


@pytest.mark.parametrize("column", ["size", "price", "region", "vin"])
def test_parse_row_missing_column(column: str) -> None:
    f = fields()
    del f[column]
    with pytest.raises(InvalidRecord) as info:
        parse_row(KEYED, f, row=1)
    assert info.value.column == column and "missing" in info.value.reason


def test_long_values_are_shortened_in_errors() -> None:
    with pytest.raises(InvalidRecord) as info:
        parse_row(KEYED, fields(size="x" * 10_000))
    assert len(info.value.value) < 200


def test_roundtrip_csv_row_to_example() -> None:
    row = parse_row(KEYED, fields(turbo="false"))
    value = encode_record(make_record(KEYED, 5, row, ts=1_700_000_000_000))
    ex = decode(KEYED, value)
    assert ex == Example(id="A1", key="EU", x={"size": 2.0, "make": "VW", "turbo": 0.0}, y=20000.0,
                         ts=1_700_000_000_000)
    assert list(ex.x) == ["size", "make", "turbo"]


def test_global_key_and_row_number_id_without_key_or_id_column() -> None:
    ds = builtin("co2")
    text = {name: "1" for name in ds.columns}
    record = make_record(ds, 42, parse_row(ds, text), ts=None)
    assert record["id"] == 42 and record["key"] == GLOBAL_KEY and record["source"] == "co2"
    ex = extract(ds, json.loads(encode_record(record)))
    assert ex.id == 42 and ex.key == GLOBAL_KEY and ex.ts is None
    assert tuple(ex.x) == ds.feature_names


def good_record() -> dict:
    return {"id": 1, "key": "EU", "ts": 5, "source": "cars",
            "row": {"size": 2.0, "make": "VW", "turbo": True, "price": 3.0, "region": "EU", "vin": "A1"}}


@pytest.mark.parametrize(
    ("mutate", "reason_part"),
    [
        (lambda r: r.pop("id"), "lacks field"),
        (lambda r: r.pop("row"), "lacks field"),
        (lambda r: r.update(id=True), "id must be"),
        (lambda r: r.update(id=1.5), "id must be"),
        (lambda r: r.update(id=""), "id must not be empty"),
        (lambda r: r.update(ts="now"), "ts must be"),
        (lambda r: r.update(key="US"), "does not match"),
        (lambda r: r.update(key=3), "key must be"),
        (lambda r: r.update(row=[1, 2]), "row is not a JSON object"),
        (lambda r: r["row"].pop("size"), "missing feature"),
        (lambda r: r["row"].update(size="2.0"), "must be a JSON number"),
        (lambda r: r["row"].update(size=True), "must be a JSON number"),
        (lambda r: r["row"].update(size=float("nan")), "not finite"),
        (lambda r: r["row"].update(turbo="yes"), "boolean"),
        (lambda r: r["row"].update(make=7), "category"),
        (lambda r: r["row"].pop("price"), "missing target"),
        (lambda r: r["row"].update(price=None), "target must be"),
        (lambda r: r["row"].pop("region"), "missing key column"),
    ],
)
def test_extract_rejects(mutate, reason_part: str) -> None:
    record = good_record()
    extract(KEYED, record)  # the unmutated record is valid
    mutate(record)
    with pytest.raises(InvalidRecord) as info:
        extract(KEYED, record)
    assert reason_part in info.value.reason


@pytest.mark.parametrize(
    "value",
    [None, b"", b"\xff\xfe", b"not json", b"[1,2]", b"null", b"1" * 5000, b"[" * 100_000,
     b'{"id": 1, "key": "EU", "row": {"size": 1e999}}', b'{"id":1,"key":"EU","row":{"size":NaN}}'],
)
def test_decode_only_raises_invalid_record(value) -> None:
    with pytest.raises(InvalidRecord):
        decode(KEYED, value)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_decode_random_bytes_never_raises_anything_else(data: bytes) -> None:
    try:
        decode(KEYED, data)
    except InvalidRecord as exc:
        assert exc.reason


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["id", "key", "ts", "row", "source"]), json_values))
def test_extract_random_shapes_never_raise_anything_else(record: dict) -> None:
    try:
        ex = extract(KEYED, record)
    except InvalidRecord:
        return
    assert all(isinstance(v, (float, str)) for v in ex.x.values()) and math.isfinite(ex.y)


def test_features_and_label_split_a_labelled_record() -> None:
    from kappaml.dataset import builtin
    from kappaml.records import FEATURES, LABEL, make_features, make_label, make_record

    ds = builtin("co2")
    row = {name: 1.0 for name in ds.feature_names} | {ds.target: 200.0}
    labelled = make_record(ds, 7, row, 1000, "s")
    features = make_features(ds, 7, row, 1000, "s")
    label = make_label(ds, 7, labelled["key"], 200.0, 2000, "s")
    assert features["kind"] == FEATURES and label["kind"] == LABEL
    assert ds.target not in features["row"]
    assert {k: features[k] for k in ("id", "key", "ts", "stream", "source")} == {
        k: labelled[k] for k in ("id", "key", "ts", "stream", "source")}
    assert (label["id"], label["key"], label["target"]) == (7, labelled["key"], 200.0)
