"""The Predict page's input form, derived from the dataset declaration (no Streamlit here).

Boolean features named ``<group>_<value>`` that share a group (one-hot columns such as a fuel
type) become one choice; every other feature is its own field. The filled form is turned into a
raw-style record and validated by ``kappaml.records.extract``, the same rules the pipeline uses.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from kappaml.dataset import GLOBAL_KEY, Dataset
from kappaml.records import Example, InvalidRecord, extract

__all__ = ["NONE_OF_THESE", "FormField", "form_fields", "to_example"]

NONE_OF_THESE = "(none of these)"

FieldKind = Literal["numeric", "boolean", "categorical", "choice", "key"]


@dataclass(frozen=True)
class FormField:
    """One input. ``name`` is the feature (or key column, or one-hot group); ``options`` maps a
    choice's label to its boolean feature."""

    name: str
    kind: FieldKind
    label: str
    unit: str | None = None
    options: tuple[tuple[str, str], ...] = ()


def _one_hot_groups(dataset: Dataset) -> dict[str, list[tuple[str, str]]]:
    groups: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for feature in dataset.features:
        if feature.kind == "boolean" and "_" in feature.name.strip("_"):
            group, _, value = feature.name.rpartition("_")
            if group and value:
                groups[group].append((value, feature.name))
    return {g: members for g, members in groups.items() if len(members) >= 2}


def form_fields(dataset: Dataset) -> list[FormField]:
    """The inputs in declaration order (a one-hot group where its first column is)."""
    groups = _one_hot_groups(dataset)
    grouped = {name: group for group, members in groups.items() for _v, name in members}
    fields: list[FormField] = []
    if dataset.key is not None:
        fields.append(FormField(dataset.key, "key", dataset.key.replace("_", " ")))
    placed: set[str] = set()
    for feature in dataset.features:
        group = grouped.get(feature.name)
        if group is not None:
            if group not in placed:
                placed.add(group)
                fields.append(FormField(group, "choice", group.replace("_", " "),
                                        options=tuple(groups[group])))
            continue
        fields.append(FormField(feature.name, feature.kind, feature.name.replace("_", " "),
                                unit=dataset.units.get(feature.name)))
    return fields


def to_example(dataset: Dataset, fields: list[FormField], values: Mapping[str, Any]) -> Example:
    """Validate the form's values (by field name) into an ``Example``; ``InvalidRecord`` says what is wrong.

    The target is unknown when predicting, but the record format requires one: a placeholder 0
    is set and never used.
    """
    row: dict[str, Any] = {}
    key = GLOBAL_KEY
    for field in fields:
        value = values.get(field.name)
        if field.kind == "choice":
            chosen = value if value is not None else NONE_OF_THESE
            labels = [label for label, _n in field.options]
            if chosen != NONE_OF_THESE and chosen not in labels:
                raise InvalidRecord(f"choose one of {labels} or {NONE_OF_THESE!r}", column=field.name,
                                    value=chosen)
            for label, name in field.options:
                row[name] = label == chosen
            continue
        if field.kind in ("numeric", "key", "categorical") and (value is None or value == ""):
            what = "a number" if field.kind == "numeric" else "a value"
            raise InvalidRecord(f"required: enter {what}", column=field.name)
        if field.kind == "key":
            key = str(value).strip()
            row[field.name] = key
        elif field.kind == "categorical":
            row[field.name] = str(value).strip()
        elif field.kind == "boolean":
            row[field.name] = bool(value)
        else:
            row[field.name] = value
    row[dataset.target] = 0.0
    example = extract(dataset, {"id": "ui-form", "key": key, "ts": None, "row": row})
    assert isinstance(example, Example)  # a record without "kind" is labelled
    return example
