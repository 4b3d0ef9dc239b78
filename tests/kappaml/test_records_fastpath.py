"""kappaml.records.decoding's fast path agrees with the checked path on every record, valid or not."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kappaml.dataset import Dataset, Feature, builtin
from kappaml.records import Example, InvalidRecord, decode, encode_record, extract, make_record
from kappaml.records.decoding import _extract_checked, _extract_fast, _plan

KEYED = Dataset(
    name="cars",
    features=(Feature("size", "numeric"), Feature("make", "categorical"), Feature("turbo", "boolean"),
              Feature("doors", "numeric")),
    target="price",
    key="region",
    id_column="vin",
)
CO2 = builtin("co2")


def valid_row(dataset: Dataset) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for f in dataset.features:
        row[f.name] = {"numeric": 1.5, "boolean": True, "categorical": "VW"}[f.kind]
    row[dataset.target] = 200.0
    for column in (dataset.key, dataset.id_column):
        if column:
            row[column] = "EU" if column == dataset.key else "A1"
    return row


def outcome(fn: Any, *args: Any) -> tuple[str, Any]:
    """What a call gives: ("ok", fields of the Example incl. x's key order) or ("error", details)."""
    try:
        ex = fn(*args)
    except InvalidRecord as exc:
        return "error", (str(exc), exc.reason, exc.column, exc.value)
    assert isinstance(ex, Example)
    return "ok", (ex.id, ex.key, list(ex.x.items()), ex.y, ex.ts, [type(v) for v in ex.x.values()])


@pytest.mark.parametrize("dataset", [KEYED, CO2], ids=["keyed", "co2"])
def test_a_record_as_the_producer_writes_it_takes_the_fast_path(dataset: Dataset) -> None:
    record = make_record(dataset, 7, valid_row(dataset), ts=123)
    # Through JSON, as the processor sees it.
    parsed = json.loads(encode_record(record))
    fast = _extract_fast(_plan(dataset), parsed)
    assert fast is not None, "the fast path must accept a well-formed record"
    assert outcome(lambda: fast) == outcome(_extract_checked, dataset, parsed)


SPECIALS = [None, True, False, 0, 1, 2, -1, 0.0, 1.0, -0.0, float("nan"), float("inf"), float("-inf"),
            1e308, -1e308, 2**1100, "", "x", "1.5", "EU", "__all__", [], {}]
weird = st.one_of(
    st.sampled_from(SPECIALS), st.integers(), st.floats(), st.text(max_size=3),
    st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
)
CELLS = sorted({*KEYED.columns, *CO2.columns})
# One or two changes to a valid record: set or drop a top-level field or a cell of its row.
changes = st.lists(
    st.tuples(st.sampled_from(["set", "drop"]),
              st.sampled_from(["id", "key", "ts", "row", "source", *(f"row.{c}" for c in CELLS)]), weird),
    max_size=2,
)


def apply(record: dict[str, Any], edits: list[tuple[str, str, Any]]) -> dict[str, Any]:
    for action, path, value in edits:
        target, name = (record.get("row"), path[4:]) if path.startswith("row.") else (record, path)
        if not isinstance(target, dict):
            continue  # the row itself was replaced by an earlier change
        if action == "drop":
            target.pop(name, None)
        else:
            target[name] = value
    return record


@settings(max_examples=1000, deadline=None)
@given(dataset=st.sampled_from([KEYED, CO2]), edits=changes)
def test_fast_and_checked_paths_agree(dataset: Dataset, edits: list[tuple[str, str, Any]]) -> None:
    record = apply(make_record(dataset, 3, valid_row(dataset), ts=5), edits)
    assert outcome(extract, dataset, copy.deepcopy(record)) == outcome(_extract_checked, dataset, record)


@pytest.mark.parametrize("dataset", [KEYED, CO2], ids=["keyed", "co2"])
def test_every_single_change_and_key_pair_agrees(dataset: Dataset) -> None:
    # Exhaustive over one change at a time (the random test above mixes them), plus the record
    # key and the row's key column changed together: the only pair that can stay consistent.
    paths = ["id", "key", "ts", "row", "source", *(f"row.{c}" for c in CELLS)]
    cases: list[list[tuple[str, str, Any]]] = [[("drop", p, None)] for p in paths]
    cases += [[("set", p, v)] for p in paths for v in SPECIALS]
    if dataset.key:
        cases += [[("set", "key", v), ("set", f"row.{dataset.key}", v)] for v in SPECIALS]
    fast_hits = 0
    for edits in cases:
        record = apply(make_record(dataset, 3, valid_row(dataset), ts=5), edits)
        fast_hits += _extract_fast(_plan(dataset), record) is not None
        expected = outcome(_extract_checked, dataset, copy.deepcopy(record))
        assert outcome(extract, dataset, record) == expected, edits
    assert fast_hits > len(paths)  # harmless changes (source, undeclared cells) stay on the fast path


def _encoded(dataset: Dataset) -> bytes:
    return encode_record(make_record(dataset, 1, valid_row(dataset), ts=1))


@settings(max_examples=300, deadline=None)
@given(dataset=st.sampled_from([KEYED, CO2]), position=st.integers(min_value=0, max_value=400),
       junk=st.binary(min_size=0, max_size=4), cut=st.booleans())
def test_decode_of_bytes_agrees_with_the_bytearray_path(dataset: Dataset, position: int, junk: bytes,
                                                        cut: bool) -> None:
    # bytes take orjson's own UTF-8 check; other buffers decode first: same result, same message.
    value = _encoded(dataset)
    position = min(position, len(value))
    value = value[:position] + junk + (b"" if cut else value[position:])
    assert outcome(decode, dataset, value) == outcome(decode, dataset, bytearray(value))


def test_decode_messages_name_the_real_problem() -> None:
    with pytest.raises(InvalidRecord, match=r"^value is not UTF-8: invalid start byte at byte 1$"):
        decode(KEYED, b'"\xff"')
    with pytest.raises(InvalidRecord, match=r"^value is not JSON: "):
        decode(KEYED, b"{nope")
    with pytest.raises(InvalidRecord, match=r"^empty message \(tombstone\)$"):
        decode(KEYED, None)


def test_plans_follow_the_dataset_object() -> None:
    # Two equal declarations are two objects; a plan is never served for the wrong one.
    other = Dataset(name="cars", features=(Feature("size", "numeric"),), target="price")
    assert _plan(other).features == ("size",)
    assert _plan(KEYED).features == ("size", "make", "turbo", "doors")
    assert _plan(KEYED) is _plan(KEYED)


def test_the_stream_of_a_record_reaches_the_example_on_both_paths() -> None:
    dataset = builtin("co2")
    record = make_record(dataset, 3, valid_row(dataset), ts=5, stream="co2@0123abcd")
    assert extract(dataset, record).stream == "co2@0123abcd"
    record["row"] = {k: (int(v) if isinstance(v, float) else v) for k, v in record["row"].items()}
    assert extract(dataset, record).stream == "co2@0123abcd"  # ints: the checked path
    assert extract(dataset, make_record(dataset, 3, valid_row(dataset), ts=5)).stream == ""
    for bad in ("", 5, ["x"]):
        with pytest.raises(InvalidRecord, match="stream must be"):
            extract(dataset, {**record, "stream": bad})
