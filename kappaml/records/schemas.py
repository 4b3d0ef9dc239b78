"""JSON Schemas of every topic's record, generated from the record classes.

``python -m kappaml.records.schemas --write`` writes ``docs/records/<name>.schema.json`` and the
index ``docs/records.md``; a test fails when they are stale. The raw topic's records are
built by functions, not classes (``kappaml.records.raw``): their schema is written out here.
"""

from __future__ import annotations

import json
import sys
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from kappaml.records.base import VERSION, Record
from kappaml.records.comparison import Comparison
from kappaml.records.control import Promotion
from kappaml.records.dlq import DeadLetter
from kappaml.records.drift import DriftEvent
from kappaml.records.gatelook import GateLook
from kappaml.records.metrics import KeyMetrics, OverallMetrics, PromotionApplied
from kappaml.records.predictions import Prediction, ServedPrediction
from kappaml.records.snapshots import SnapshotHeader

__all__ = ["DOCS", "SCHEMAS", "Schema", "render_index", "schema_of", "schemas", "write"]

DOCS = Path(__file__).resolve().parents[2] / "docs"
_DRAFT = "https://json-schema.org/draft/2020-12/schema"


@dataclass(frozen=True)
class Schema:
    name: str  # docs/records/<name>.schema.json
    topics: str  # where the record is written, for the index
    record: type[Record] | None  # None: the raw record, whose schema is written out below
    writers: str
    readers: str


SCHEMAS: tuple[Schema, ...] = (
    Schema("raw", "`<prefix>.raw`", None, "producer", "processor, spark_batch replay"),
    Schema("control", "`<prefix>.raw` (key `__kappaml_control__`)", Promotion,
           "`python -m processor promote` / `rollback`, the UI's Champion vs challengers page",
           "processor, spark_batch replay"),
    Schema("prediction", "`<prefix>.predictions`, `<prefix>.challengers`", Prediction, "processor",
           "UI, feeds, bench"),
    Schema("served-prediction", "`<prefix>.predictions`, `<prefix>.challengers` (`kind` served)",
           ServedPrediction, "processor", "UI, feeds"),
    Schema("key-metrics", "`<prefix>.metrics` (scope `key`)", KeyMetrics,
           "processor, spark_batch replay (`origin` replay)", "UI, feeds"),
    Schema("overall-metrics", "`<prefix>.metrics` (scope `overall`)", OverallMetrics,
           "processor, spark_batch replay (`origin` replay)", "UI, feeds"),
    Schema("comparison", "`<prefix>.metrics` (scope `comparison`)", Comparison, "processor", "UI, feeds"),
    Schema("promotion", "`<prefix>.metrics` (scope `promotion`)", PromotionApplied, "processor",
           "UI, feeds"),
    Schema("gate-look", "`<prefix>.metrics` (scope `gate`)", GateLook, "processor (`--promotion auto`)",
           "UI, feeds"),
    Schema("drift", "`<prefix>.drift`; the replay's summary.json (`drifts`)", DriftEvent,
           "processor, spark_batch replay", "UI, feeds"),
    Schema("dead-letter", "`<prefix>.dlq`", DeadLetter, "processor, producer", "UI"),
    Schema("snapshot-header", "`<prefix>.models` (the JSON header of the binary envelope)", SnapshotHeader,
           "processor, spark_batch replay", "UI, processor cut-over"),
)

_RAW: dict[str, Any] = {
    "description": (
        "A record of the raw topic, keyed by its model key. Three kinds: labelled (no `kind`: "
        "features and target at once, every record written before delayed labels), `features` "
        "(the row without the target) and `label` (the target of an earlier `features` record, "
        "same id and key). Raw records carry no `v`: their format is the data set's declaration "
        "(`kappaml.records.raw`), checked by `kappaml.records.decode`."),
    "type": "object",
    "properties": {
        "kind": {"enum": ["labelled", "features", "label"],
                 "description": "absent: labelled"},
        "id": {"type": ["integer", "string"],
               "description": "row id: the id column's value or the row number"},
        "key": {"type": "string", "minLength": 1,
                "description": "model key: the key column's value, or __all__"},
        "ts": {"type": ["integer", "null"], "description": "event time, ms since the epoch"},
        "source": {"type": "string", "description": "the data set's name"},
        "stream": {"type": "string", "minLength": 1, "description": "where the row comes from "
                   "(kappaml.provenance); row ids are unique within it"},
        "pass": {"type": "integer", "minimum": 1, "description": "the pass of a looping replay (absent: 1)"},
        "row": {"type": "object", "description": "the typed row: every declared feature (and, but for "
                "features records, the target), key and id column"},
        "target": {"type": "number", "description": "label records: the outcome"},
    },
    "required": ["id", "key"],
}

_SIMPLE = {str: "string", int: "integer", float: "number", bool: "boolean", type(None): "null"}


def _type_schema(hint: Any, defs: dict[str, Any]) -> dict[str, Any]:
    if hint in _SIMPLE:
        return {"type": _SIMPLE[hint]}
    if hint is Any or hint is object:
        return {}
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if all(a in _SIMPLE for a in args):
            return {"type": [_SIMPLE[a] for a in args]}
        return {"anyOf": [_type_schema(a, defs) for a in args]}
    if origin is Literal:
        return {"const": args[0]} if len(args) == 1 else {"enum": list(args)}
    if origin is dict:
        return {"type": "object", "additionalProperties": _type_schema(args[1], defs) if args else {}}
    if origin in (list, tuple):
        return {"type": "array", "items": _type_schema(args[0], defs) if args else {}}
    if isinstance(hint, type) and issubclass(hint, Record):
        if hint.__name__ not in defs:
            defs[hint.__name__] = {}  # placeholder against recursion
            defs[hint.__name__] = _object_schema(hint, defs)
        return {"$ref": f"#/$defs/{hint.__name__}"}
    raise TypeError(f"no schema for type {hint!r}")


def _object_schema(cls: type[Record], defs: dict[str, Any]) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    for f in cls.FIELDS:
        prop = _type_schema(f.hint, defs)
        if f.doc:
            prop["description"] = f.doc
        if not f.required and f.default is not None and isinstance(f.default, (str, int, float, bool)):
            prop["default"] = f.default
        properties[f.wire] = prop
    return {
        "description": (cls.__doc__ or "").strip().split("\n\n")[0],
        "type": "object",
        "properties": properties,
        "required": [f.wire for f in cls.FIELDS if f.required],
        # Readers ignore fields they do not know: an optional field added later breaks none.
        "additionalProperties": True,
    }


def schema_of(entry: Schema) -> dict[str, Any]:
    """The JSON Schema document of one topic's record."""
    head = {"$schema": _DRAFT, "$id": f"https://kappaml.invalid/records/{entry.name}.schema.json",
            "title": f"kappaml {entry.name} record"}
    if entry.record is None:
        return {**head, **_RAW}
    defs: dict[str, Any] = {}
    body = _object_schema(entry.record, defs)
    if entry.record is not SnapshotHeader:  # the envelope's format byte versions the snapshot
        body["properties"] = {"v": {"type": "integer", "minimum": 1, "maximum": VERSION,
                                    "description": f"record format version ({VERSION}); absent means 1"},
                              **body["properties"]}
    return {**head, **body, **({"$defs": defs} if defs else {})}


def schemas() -> dict[str, str]:
    """``docs/``-relative path -> text of every generated file."""
    out = {f"records/{s.name}.schema.json": json.dumps(schema_of(s), indent=2, ensure_ascii=False) + "\n"
           for s in SCHEMAS}
    out["records.md"] = render_index()
    return out


def render_index() -> str:
    lines = [
        "# Records",
        "",
        "Every record kappaml writes to Kafka is a typed class of `kappaml.records` (one module per "
        "topic family), used by every writer and reader. Encoded records carry `\"v\": 1`; a record "
        "without `v` (written before it existed) reads as v1, a higher `v` is refused with a reason. "
        "Fields are only ever added, as optional fields, without changing `v`: readers ignore "
        "fields they do not know. Generated by `python -m kappaml.records.schemas --write`; a test "
        "fails when these files are stale.",
        "",
        "| Record | Topic | Class | Written by | Read by | Schema |",
        "|---|---|---|---|---|---|",
    ]
    for s in SCHEMAS:
        cls = f"`{s.record.__module__}.{s.record.__name__}`" if s.record else "`kappaml.records.raw`"
        lines.append(f"| {s.name} | {s.topics} | {cls} | {s.writers} | {s.readers} | "
                     f"[{s.name}.schema.json](records/{s.name}.schema.json) |")
    return "\n".join(lines) + "\n"


def write(docs: Path = DOCS) -> list[Path]:
    written = []
    for relative, text in schemas().items():
        path = docs / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        for path in write():
            sys.stdout.write(f"wrote {path}\n")
    else:
        sys.stdout.write(render_index())
