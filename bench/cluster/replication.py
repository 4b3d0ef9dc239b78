"""``rf``: ingest rows/s and processor msg/s on the 3-node cluster (replication 3, acks=all) and
on a single broker, runs alternating."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.cluster.cpu import Conditions
from bench.harness import summary
from infra.testing import typed_rows
from kappaml import synthetic
from kappaml.kafka import KafkaSettings


def bench_rf(
    cluster_kafka: KafkaSettings, single_kafka: KafkaSettings, work: Path, runs: int, rows: int, messages: int
) -> dict[str, Any]:
    from bench.bench_ingest import bench_throughput
    from bench.bench_processor import _backlog, kappaml_rate

    proc_rows = typed_rows(synthetic.dataset(), synthetic.write_csv(work / "rf-rows.csv", messages, seed=1))
    out: dict[str, Any] = {"ingest_rows": rows, "processor_messages": messages, "runs": []}
    targets = {"3 nodes, RF 3, acks=all, min.insync 2": cluster_kafka, "single broker, RF 1": single_kafka}
    for r in range(runs):
        for name, kafka in targets.items():
            cond = Conditions()
            (work / f"rf-ingest-{r}-{name[:1]}").mkdir(parents=True, exist_ok=True)
            ingest = bench_throughput(rows, kafka, work / f"rf-ingest-{r}-{name[:1]}")
            rate = kappaml_rate(
                kafka, _backlog(kafka, proc_rows), "exactly-once", messages, work / f"rf-proc-{r}-{name[:1]}"
            )
            run = {
                "target": name,
                "run": r,
                "ingest_rows_per_s": ingest["rows_per_s"],
                "ingest_committed": ingest["committed_in_raw_topic"],
                "processor_msg_per_s": round(rate),
                "conditions": cond.end(),
            }
            out["runs"].append(run)
            print(json.dumps({"rf": run}), flush=True)  # noqa: T201
    for name in targets:
        mine = [r for r in out["runs"] if r["target"] == name]
        out[name] = {k: summary([r[k] for r in mine]) for k in ("ingest_rows_per_s", "processor_msg_per_s")}
        out[name]["others_cores"] = summary([r["conditions"]["others_cores"] for r in mine])
    return out
