"""The declaration of a CSV data set: which columns are features, which is the target, the key.

Every other module learns the column names of a data set from its declaration only; the
CO2 data's names live in ``kappaml/datasets/co2.toml`` and nowhere else.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

__all__ = ["GLOBAL_KEY", "Dataset", "Feature", "FeatureKind", "builtin", "load"]

FeatureKind = Literal["numeric", "categorical", "boolean"]
_KINDS: tuple[str, ...] = ("numeric", "categorical", "boolean")

# The model key of data sets without a key column: one global model.
GLOBAL_KEY = "__all__"


@dataclass(frozen=True)
class Feature:
    name: str
    kind: FeatureKind = "numeric"

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a feature needs a name")
        if self.kind not in _KINDS:
            raise ValueError(f"feature {self.name!r}: kind must be one of {_KINDS}, got {self.kind!r}")


@dataclass(frozen=True)
class Dataset:
    """A typed description of a CSV.

    ``key``: the column whose value selects a per-key model (None: one global model).
    ``id_column``: the column holding a unique row id (None: the 1-based row number).
    """

    name: str
    features: tuple[Feature, ...]
    target: str
    key: str | None = None
    id_column: str | None = None
    description: str = ""
    synthetic: bool = False
    units: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.features:
            raise ValueError(f"dataset {self.name!r} declares no feature columns")
        names = [f.name for f in self.features]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"dataset {self.name!r}: duplicate feature columns {dupes}")
        if self.target in names:
            raise ValueError(f"dataset {self.name!r}: target {self.target!r} is also a feature")
        for role in ("key", "id_column"):
            col = getattr(self, role)
            if col is not None and (col == self.target or col in names):
                raise ValueError(f"dataset {self.name!r}: {role} {col!r} is also a feature/target")

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    @property
    def columns(self) -> tuple[str, ...]:
        """Every declared column: the ones a CSV of this data set must have."""
        extra = tuple(c for c in (self.key, self.id_column) if c is not None)
        return (*self.feature_names, self.target, *extra)

    def to_dict(self) -> dict[str, Any]:
        """The declaration as plain JSON values: ``from_dict(to_dict())`` is an equal Dataset."""
        return {
            "name": self.name,
            "features": [{"name": f.name, "kind": f.kind} for f in self.features],
            "target": self.target,
            "key": self.key,
            "id_column": self.id_column,
            "description": self.description,
            "synthetic": self.synthetic,
            "units": dict(self.units),
        }

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

    @classmethod
    def from_json(cls, data: bytes | str) -> Dataset:
        try:
            value = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValueError(f"dataset declaration is not JSON: {exc}") from None
        if not isinstance(value, dict):
            raise ValueError("dataset declaration is not a JSON object")
        return cls.from_dict(value)

    @property
    def fingerprint(self) -> str:
        """A hash of what decides how records are read and learned: name, features (names, kinds,
        order), target, key and id column. Description, units and the synthetic flag only
        describe the data, so two declarations differing in them agree."""
        essential = {
            "name": self.name,
            "features": [[f.name, f.kind] for f in self.features],
            "target": self.target,
            "key": self.key,
            "id_column": self.id_column,
        }
        text = json.dumps(essential, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Dataset:
        try:
            features = tuple(
                Feature(name=f, kind="numeric") if isinstance(f, str) else Feature(**f)
                for f in data["features"]
            )
            return cls(
                name=data["name"],
                features=features,
                target=data["target"],
                key=data.get("key"),
                id_column=data.get("id_column"),
                description=data.get("description", ""),
                synthetic=bool(data.get("synthetic", False)),
                units=dict(data.get("units", {})),
            )
        except KeyError as exc:
            raise ValueError(f"dataset declaration is missing {exc.args[0]!r}") from None
        except TypeError as exc:
            raise ValueError(f"dataset declaration is malformed: {exc}") from None

    @classmethod
    def from_toml(cls, path: str | Path) -> Dataset:
        path = Path(path)
        try:
            with path.open("rb") as fh:
                return cls.from_dict(tomllib.load(fh))
        except FileNotFoundError:
            raise ValueError(f"dataset file not found: {path}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"dataset file {path} is not valid TOML: {exc}") from None


def builtin(name: str) -> Dataset:
    """A declaration shipped with kappaml, e.g. ``builtin("co2")``."""
    ref = resources.files("kappaml.datasets") / f"{name}.toml"
    if not ref.is_file():
        raise ValueError(f"no built-in dataset named {name!r}")
    with resources.as_file(ref) as path:
        return Dataset.from_toml(path)


def load(spec: str) -> Dataset:
    """A built-in name (``co2``) or the path of a TOML declaration."""
    return Dataset.from_toml(spec) if spec.endswith(".toml") else builtin(spec)
