"""The short chaos run of ``make test``: ~2,000 synthetic rows plus a corrupted copy, each program
SIGKILLed, one broker restart (a private broker), one dropped SSE connection; nothing lost,
nothing duplicated, and the live models equal an undisturbed run."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos.harness import ChaosConfig, run

pytestmark = [pytest.mark.kafka, pytest.mark.chaos]


def test_short_chaos_run_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    # 250 rows/s: the same rows and seeded faults as at 150 rows/s, compressed into ~16 s of stream
    # (~4,000 rows with the corrupted copy); the processor keeps up at either rate.
    report = run(ChaosConfig(workdir=tmp_path, rows=2000, rate=250, seed=7,
                             kills={"processor": 2, "ingest": 2, "serve": 1}, timeout=200))
    print("\n" + report.table())  # noqa: T201 - the accounting table is the test's output
    assert sum(report.corrupted.values()) > 0 and report.dlq_rows > 0
    assert len(report.faults) == 7, report.faults
    assert not report.lost_rows, report.lost_rows[:20]
    assert report.raw_duplicates == 0 and report.in_raw_and_dlq == 0
    assert report.prediction_duplicates == 0 and not report.not_learned
    assert report.learned == report.learnable > 0
    assert report.fingerprints_equal, report.fingerprints
