"""docs/records/ holds the JSON Schemas generated from the record classes (and docs/records.md
their index): stale files fail here. Every record class is published."""

from __future__ import annotations

import inspect
from pathlib import Path

import jsonschema
import pytest

import kappaml.records as records
from kappaml.records.base import Record
from kappaml.records.schemas import SCHEMAS, schema_of, schemas

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_the_published_schemas_are_generated_from_the_classes() -> None:
    for relative, text in schemas().items():
        path = DOCS / relative
        assert path.exists() and path.read_text() == text, (
            f"docs/{relative} is stale: python -m kappaml.records.schemas --write")
    published = {p.name for p in (DOCS / "records").glob("*.schema.json")}
    assert published == {f"{s.name}.schema.json" for s in SCHEMAS}, "docs/records/ holds stray schemas"


def test_every_top_level_record_class_has_a_schema() -> None:
    classes = {c for _n, c in inspect.getmembers(records, inspect.isclass)
               if issubclass(c, Record) and c is not Record
               and c not in (records.SpecFigures, records.GateEvidence)}  # nested: in their parents' schemas
    from kappaml.records.snapshots import SnapshotHeader  # noqa: PLC0415

    assert classes | {SnapshotHeader} == {s.record for s in SCHEMAS if s.record is not None}


@pytest.mark.parametrize("entry", SCHEMAS, ids=lambda s: s.name)
def test_each_schema_is_a_valid_json_schema(entry) -> None:
    jsonschema.Draft202012Validator.check_schema(schema_of(entry))


def test_the_raw_schema_takes_the_producers_records() -> None:
    from kappaml.dataset import builtin  # noqa: PLC0415
    from kappaml.records import make_features, make_label, make_record  # noqa: PLC0415

    co2 = builtin("co2")
    row = {f.name: (1.0 if f.kind == "numeric" else "a" if f.kind == "categorical" else True)
           for f in co2.features}
    row[co2.target] = 250.0
    schema = schema_of(SCHEMAS[0])
    for record in (make_record(co2, 1, row, 5, "s"), make_features(co2, 1, row, 5),
                   make_label(co2, 1, "__all__", 250.0, None)):
        jsonschema.validate(record, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"id": 1, "key": "", "row": {}}, schema)
