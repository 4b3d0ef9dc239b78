"""The delayed-label policy: ``--label-ttl`` and ``--on-missing-label`` (issue 17).

:class:`LabelPolicy` says how long a label may take (``N`` records of the key, or ``Ns``
seconds of event time, never the wall clock) and what happens when it never comes (``drop``,
or ``learn=VALUE``). The rules are applied by :func:`kappaml.learner.apply_record` to the
state in :mod:`kappaml.pending` (which re-exports these names).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["NO_TTL", "LabelPolicy", "parse_on_missing", "parse_ttl"]


def parse_ttl(text: str | None) -> tuple[int | None, int | None]:
    """``--label-ttl``: ``"500"`` -> (500 rows, None); ``"30s"`` / ``"1.5s"`` -> (None, ms);
    ``""``, ``"none"`` or None -> (None, None): labels may take forever. ValueError otherwise."""
    if text is None or text.strip().lower() in ("", "none", "off"):
        return None, None
    raw = text.strip().lower()
    try:
        if raw.endswith("s"):
            seconds = float(raw[:-1])
            if not math.isfinite(seconds) or seconds <= 0:
                raise ValueError
            return None, max(1, round(seconds * 1000))
        rows = int(raw)
        if rows < 1:
            raise ValueError
        return rows, None
    except ValueError:
        raise ValueError(f"--label-ttl must be N (records of the key, N >= 1) or Ns (seconds of event "
                         f"time, > 0), e.g. 500 or 30s; got {text!r}") from None


def parse_on_missing(text: str | None) -> float | None:
    """``--on-missing-label``: ``"drop"`` -> None; ``"learn=VALUE"`` -> VALUE (a finite number)."""
    raw = (text or "drop").strip()
    if raw.lower() == "drop":
        return None
    if raw.lower().startswith("learn="):
        try:
            value = float(raw.split("=", 1)[1])
        except ValueError:
            value = math.nan
        if math.isfinite(value):
            return value
    raise ValueError(f"--on-missing-label must be drop or learn=VALUE (a finite number), got {text!r}")


@dataclass(frozen=True)
class LabelPolicy:
    """When a served prediction stops waiting for its label, and what then.

    ``ttl_rows``: expires once more than N later records of the key were handled;
    ``ttl_ms``: once the key's event time (the largest record ts so far) is more than this past
    the features' ts (a record without ts does not expire by time). Neither: never expires.
    ``learn_missing``: None drops an expired prediction; a number is learned as its target (and
    scored against the served prediction).
    """

    ttl_rows: int | None = None
    ttl_ms: int | None = None
    learn_missing: float | None = None

    def __post_init__(self) -> None:
        if self.ttl_rows is not None and self.ttl_ms is not None:
            raise ValueError("a label TTL is in rows or in seconds, not both")
        if self.ttl_rows is not None and self.ttl_rows < 1:
            raise ValueError(f"ttl_rows must be >= 1, got {self.ttl_rows}")
        if self.ttl_ms is not None and self.ttl_ms < 1:
            raise ValueError(f"ttl_ms must be >= 1, got {self.ttl_ms}")
        if self.learn_missing is not None and not math.isfinite(self.learn_missing):
            raise ValueError("the missing-label value must be finite")

    @classmethod
    def parse(cls, ttl: str | None = None, on_missing: str | None = None) -> LabelPolicy:
        """From the flag values: ``parse("500", "drop")``, ``parse("30s", "learn=0")``."""
        rows, ms = parse_ttl(ttl)
        return cls(ttl_rows=rows, ttl_ms=ms, learn_missing=parse_on_missing(on_missing))

    @property
    def mode(self) -> str | None:
        """``rows``, ``ms`` or None (no TTL)."""
        return "rows" if self.ttl_rows is not None else "ms" if self.ttl_ms is not None else None

    @property
    def ttl_text(self) -> str:
        if self.ttl_rows is not None:
            return str(self.ttl_rows)
        if self.ttl_ms is not None:
            return f"{self.ttl_ms / 1000:g}s"
        return "none"

    @property
    def on_missing_text(self) -> str:
        return "drop" if self.learn_missing is None else f"learn={self.learn_missing:g}"


NO_TTL = LabelPolicy()
