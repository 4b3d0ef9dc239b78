"""Says so when the processor skips much of its input as rows it has already learned.

A few duplicates are normal (an at-least-once upstream after a crash); a large share means
the same rows (same stream, same row ids) were ingested again, and a model that learns
nothing while lag stays 0 looks healthy unless someone says otherwise.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from kappaml.logging import get_logger

__all__ = ["DuplicateWatch"]

log = get_logger(__name__)


class DuplicateWatch:
    """Share of skipped rows in the latest window of at least ``min_rows`` input rows."""

    def __init__(self, threshold: float = 0.05, min_rows: int = 100, warn_every: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold = threshold
        self.min_rows = min_rows
        self.warn_every = warn_every
        self._clock = clock
        # Rows of this run that reached the serving model: learned, added at each checkpoint from
        # the processor's interval figures; skipped, counted per message (a rare branch).
        self.learned = 0
        self.skipped = 0
        self._counted = (0, 0)  # learned, skipped at the last evaluation
        self.share: float | None = None
        self.recent = (0, 0)  # (skipped, rows) of the window the share was computed on
        self._warned_at: float | None = None

    def update(self, skipped_total: int) -> dict[str, Any]:
        """The ``duplicates`` field of the overall metrics (``skipped_total``: of the serving models)."""
        learned, skipped = self.learned - self._counted[0], self.skipped - self._counted[1]
        if learned + skipped >= self.min_rows:
            self.share = skipped / (learned + skipped)
            self.recent = (skipped, learned + skipped)
            self._counted = (self.learned, self.skipped)
            self._maybe_warn(skipped_total)
        warn = self.share is not None and self.share > self.threshold
        return {"skipped": skipped_total, "share": self.share, "recent_skipped": self.recent[0],
                "recent_rows": self.recent[1], "threshold": self.threshold, "warning": warn}

    def _maybe_warn(self, skipped_total: int) -> None:
        if self.share is None or self.share <= self.threshold:
            return
        now = self._clock()
        if self._warned_at is not None and now - self._warned_at < self.warn_every:
            return
        self._warned_at = now
        log.warning(
            "a large share of recent input was skipped as already learned",
            skipped_recent=self.recent[0], rows_recent=self.recent[1], share=round(self.share, 3),
            skipped_total=skipped_total, learned_this_run=self.learned,
            hint="these rows (same stream, same row ids) were ingested before; a different file is "
                 "a new stream, the same file again is skipped by design",
        )
