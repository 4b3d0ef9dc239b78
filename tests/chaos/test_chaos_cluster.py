"""The short cluster chaos run of ``make test`` (``make chaos-cluster`` is the long one): 3 Kafka
nodes with the busiest leader SIGKILLed, two processors with one SIGKILLed and kept down until its
partitions moved, and a replay on a Spark master with two workers, one SIGKILLed mid-replay."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos.cluster import ClusterChaosConfig, run_cluster

pytestmark = [pytest.mark.kafka, pytest.mark.chaos, pytest.mark.spark]


def test_short_cluster_chaos_run_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    report = run_cluster(ClusterChaosConfig(workdir=tmp_path, rows=1800, keys=12, raw_partitions=6,
                                            processors=2, rate=120, seed=7, timeout=400))
    print("\n" + report.table())  # noqa: T201 - the accounting table is the test's output
    # The broker and processor kills are timed close together: their order in the report may swap.
    kinds = [f.split()[1] for f in report.faults]
    assert len(kinds) == 3 and kinds[-1] == "spark", report.faults
    assert sorted(k.split("-")[0] for k in kinds[:2]) == ["kafka", "processor"], report.faults
    assert report.programs["raw topic replicas"] == {"per partition": [3]}
    assert report.programs["replay"] == {"exit code": 0, "worker killed": True}
    assert not report.lost_rows and report.raw_duplicates == 0, report.lost_rows[:20]
    assert report.prediction_duplicates == 0 and not report.not_learned
    assert report.learned == report.learnable == 1800
    assert len(report.fingerprints) == 24 and report.fingerprints_equal, report.fingerprints
