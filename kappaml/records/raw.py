"""Records of a declared data set: CSV text -> typed row -> raw-topic JSON -> ``Example``.

Two directions share one set of rules so the producer and the consumers cannot disagree:

* ``parse_row`` turns the text fields of one CSV row into typed values (the producer side);
  ``make_record`` / ``encode_record`` wrap them in the raw-topic value format.
* ``extract`` / ``decode`` validate a raw-topic value and return an ``Example`` (the processor
  and Spark replay side).

Every problem is an ``InvalidRecord`` carrying a precise reason (and, for CSV rows, the row,
column and offending value); no other exception escapes ``decode``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from kappaml.dataset import GLOBAL_KEY, Dataset
from kappaml.example import Example, FeaturesRecord, InvalidRecord, LabelRecord, RawRecord
from kappaml.records.decoding import FEATURES, LABEL, LABELLED, decode, extract

__all__ = [
    "FEATURES",
    "LABEL",
    "LABELLED",
    "RAW_KINDS",
    "Example",
    "FeaturesRecord",
    "InvalidRecord",
    "LabelRecord",
    "RawRecord",
    "RowParser",
    "decode",
    "encode_record",
    "extract",
    "make_features",
    "make_label",
    "make_record",
    "model_key",
    "parse_row",
]

# Python's float() also accepts "1_000", "nan", "infinity" and "0x..." (via int): a CSV number
# is the plain decimal notation only.
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_TRUE = frozenset({"true", "1"})
_FALSE = frozenset({"false", "0"})


# --------------------------------------------------------------------------- CSV text -> values


def _parse_number(text: str, column: str, row: int | None, what: str = "value") -> float:
    # Fast path for the common case; float() alone would also take "1_0", "nan" and non-ASCII digits.
    if text.isascii() and "_" not in text:
        try:
            number = float(text)
        except ValueError:
            pass
        else:
            if number - number == 0.0:  # finite
                return number
    stripped = text.strip()
    if not stripped:
        raise InvalidRecord(f"missing {what}", row=row, column=column, value=text)
    if _NUMBER.fullmatch(stripped) is None:
        lowered = stripped.lower().lstrip("+-")
        if lowered in ("nan", "inf", "infinity"):
            raise InvalidRecord(f"{what} is not finite", row=row, column=column, value=text)
        raise InvalidRecord(f"{what} is not a number", row=row, column=column, value=text)
    number = float(stripped)
    if not math.isfinite(number):
        raise InvalidRecord(f"{what} is out of range", row=row, column=column, value=text)
    return number


def _parse_bool(text: str, column: str, row: int | None) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    if not lowered:
        raise InvalidRecord("missing value", row=row, column=column, value=text)
    raise InvalidRecord("not a boolean (True/False/1/0)", row=row, column=column, value=text)


def _parse_text(text: str, column: str, row: int | None, what: str) -> str:
    stripped = text.strip()
    if not stripped:
        raise InvalidRecord(f"missing {what}", row=row, column=column, value=text)
    return stripped


def _parse_bool_fast(text: str, column: str, row: int | None, what: str) -> bool:
    flag = _BOOL_FAST.get(text)
    return flag if flag is not None else _parse_bool(text, column, row)


_BOOL_FAST = {"True": True, "False": False, "true": True, "false": False, "1": True, "0": False}
_CONVERTERS: dict[str, Any] = {"numeric": _parse_number, "boolean": _parse_bool_fast, "text": _parse_text}


class RowParser:
    """``parse_row`` for one data set, with the per-column work planned once (the producer's hot path)."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        # (column, kind, what-it-is for messages) in the order of the typed row.
        plan: list[tuple[str, str, str]] = [
            (f.name, "text", "category") if f.kind == "categorical" else (f.name, f.kind, "value")
            for f in dataset.features
        ]
        plan.append((dataset.target, "numeric", "target"))
        plan += [(c, "text", w) for c, w in ((dataset.key, "key"), (dataset.id_column, "id")) if c]
        self.columns = tuple(c for c, _, _ in plan)
        self._plan = tuple((c, _CONVERTERS[kind], what) for c, kind, what in plan)

    def parse(self, fields: Mapping[str, str], row: int | None = None) -> dict[str, Any]:
        """Typed values of one CSV row, keyed by the declared columns (features, target, key, id)."""
        values: dict[str, Any] = {}
        for column, convert, what in self._plan:
            try:
                text = fields[column]
            except KeyError:
                reason = "missing target column" if what == "target" else "missing column"
                raise InvalidRecord(reason, row=row, column=column) from None
            values[column] = convert(text, column, row, what)
        return values

    def parse_fields(
        self, texts: list[str], positions: tuple[int, ...], row: int | None = None
    ) -> dict[str, Any]:
        """Like ``parse`` for a split CSV line; ``positions[i]`` is the field of ``self.columns[i]``."""
        return {
            column: convert(texts[pos], column, row, what)
            for (column, convert, what), pos in zip(self._plan, positions, strict=True)
        }


def parse_row(dataset: Dataset, fields: Mapping[str, str], row: int | None = None) -> dict[str, Any]:
    """Typed values of one CSV row, keyed by the declared columns in declaration order.

    ``fields`` maps column names to the row's text (columns the data set does not declare are
    ignored). Numeric features and the target become floats, booleans bools, categoricals,
    the key and the id column stripped non-empty strings.
    """
    return RowParser(dataset).parse(fields, row)



# --------------------------------------------------------------------------- values -> raw record


def model_key(dataset: Dataset, row: Mapping[str, Any]) -> str:
    """The model key of a typed row: its key column's value, or ``GLOBAL_KEY``."""
    return GLOBAL_KEY if dataset.key is None else str(row[dataset.key])


def make_record(
    dataset: Dataset, row_number: int, row: Mapping[str, Any], ts: int | None, stream: str | None = None
) -> dict[str, Any]:
    """The raw-topic value (as a dict) of a typed row; the id is the id column's value or ``row_number``.

    ``stream`` names where the row comes from (``kappaml.provenance``); row ids are unique within it.
    """
    record_id: int | str = row_number if dataset.id_column is None else str(row[dataset.id_column])
    record = {
        "id": record_id,
        "key": model_key(dataset, row),
        "ts": ts,
        "source": dataset.name,
        "row": dict(row),
    }
    if stream:
        record["stream"] = stream
    return record


# The kinds of raw record (defined in decoding). A record without "kind" is labelled (features
# and target at once): every record written before delayed labels existed stays valid.
RAW_KINDS = (LABELLED, FEATURES, LABEL)


def make_features(
    dataset: Dataset, row_number: int, row: Mapping[str, Any], ts: int | None, stream: str | None = None
) -> dict[str, Any]:
    """The ``features`` half of a typed row: what is known when the prediction is needed.

    Same id, key, ts and stream as ``make_record``; the row lacks the target.
    """
    record = make_record(dataset, row_number, row, ts, stream)
    record["row"] = {c: v for c, v in record["row"].items() if c != dataset.target}
    record["kind"] = FEATURES
    return record


def make_label(
    dataset: Dataset, record_id: int | str, key: str, target: float, ts: int | None, stream: str | None = None
) -> dict[str, Any]:
    """The ``label`` of an earlier ``features`` record (same id and key): the outcome, once known."""
    record: dict[str, Any] = {
        "kind": LABEL,
        "id": record_id,
        "key": key,
        "ts": ts,
        "source": dataset.name,
        "target": target,
    }
    if stream:
        record["stream"] = stream
    return record


def encode_record(record: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON; NaN/inf are refused, they are never valid in a record."""
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")
