"""The "Cluster" section of bench/REPORT.md, from the results (bench/results/cluster.json)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from bench.cluster.common import KEYS, PARTITIONS, REPORT


def _mm(s: dict[str, Any], fmt: str = "{:,.2f}") -> str:
    return f"{fmt.format(s['median'])} ({fmt.format(s['min'])}–{fmt.format(s['max'])}, {s['runs']} runs)"


def _others(runs: list[dict[str, Any]]) -> str:
    cores = [r["conditions"]["others_cores"] for r in runs]
    loads = [r["conditions"]["load_before"][0] for r in runs]
    return f"load {min(loads):.1f}–{max(loads):.1f}; others {min(cores):.2f}–{max(cores):.2f} cores"


def _pairs(runs: list[dict[str, Any]]) -> list[tuple[float, float]]:
    """(ingest, processor) ratio of the cluster to the single broker, per run (pair)."""
    out = []
    for r in sorted({run["run"] for run in runs}):
        both = [run for run in runs if run["run"] == r]
        if len(both) == 2:
            cluster, single = sorted(both, key=lambda run: not run["target"].startswith("3 nodes"))
            out.append((cluster["ingest_rows_per_s"] / single["ingest_rows_per_s"],
                        cluster["processor_msg_per_s"] / single["processor_msg_per_s"]))
    return out


def _failed(section: dict[str, Any]) -> str:
    failed = section.get("failed_runs", [])
    return f" Runs not set up under the load, left out: {'; '.join(failed)}." if failed else ""


def render(res: dict[str, Any]) -> str:
    lines = [
        "## Cluster (`python -m bench.bench_cluster`)",
        "",
        f"Run on {res['started']} in {res['duration_s']:,.0f} s on {res['machine']['cores']} cores "
        f"shared with other sessions: load average (1/5/15 min) {res['load_start']['loadavg']} at the start, "
        f'{res["load_end"]["loadavg"]} at the end. "others" is the CPU, in cores, that processes not '
        "of this run used during a figure's runs (machine busy time from /proc/stat minus this run's "
        "processes): everything here ran on the cores they left. A 3-node KRaft cluster "
        "(`infra/cluster.py`, 512 MiB heap per node, replication 3, min.insync.replicas 2), "
        f"topics of {PARTITIONS} partitions, a keyed data set of {KEYS} keys (synthetic CO2 rows, "
        "spec `rls`, drift detector `adwin`, the processor's defaults). Figures: median (min–max, runs). "
        "Raw numbers: `bench/results/cluster.json`. Not part of `make bench` (it runs 3 brokers, a "
        "single one and Spark daemons for about 25 minutes): `python -m bench.bench_cluster` rewrites "
        "this section only, `--render-only` from the last results.",
        "",
    ]
    if "scaling" in res:
        s = res["scaling"]
        lines += [
            "**Processor instances in one group** (the same backlog of "
            f"{s['messages']:,} messages for each; CPU of the processor processes only, from /proc; "
            "steady: from 10% to 90% of the predictions committed):",
            "",
            "| instances | CPU-s / 1,000 msgs, steady "
            "| CPU-s / 1,000 msgs, whole run (start-up and join included) "
            "| brokers' CPU-s / 1,000 msgs, steady | msg/s, steady | conditions |",
            "|---|---|---|---|---|---|",
        ]
        for k in ("1", "2", "3"):
            if k in s:
                mine = [r for r in s["runs"] if str(r["instances"]) == k]
                lines.append(
                    f"| {k} | {_mm(s[k]['cpu_s_per_1000_steady'], '{:.3f}')} | "
                    f"{_mm(s[k]['cpu_s_per_1000_total'], '{:.3f}')} | "
                    f"{_mm(s[k]['broker_cpu_s_per_1000_steady'], '{:.3f}')} | "
                    f"{_mm(s[k]['msg_per_s_steady'], '{:,.0f}')} | {_others(mine)} |"
                )
        lines.append("")
    if "spark" in res:
        s = res["spark"]
        lines += [
            f"**Spark replay** of that backlog ({s['messages']:,} messages, {s['partitions']} partitions, "
            "`--no-publish`, 2 tasks' worth of cores either way; CPU of the driver, executors, Python "
            "workers and, on the standalone cluster, its master's and workers' daemons):",
            "",
            "| master | wall s | CPU-s | CPU-s / 1,000 msgs | conditions |",
            "|---|---|---|---|---|",
        ]
        for mode in ("local[2]", "standalone, 2 workers"):
            if mode in s:
                mine = [r for r in s["runs"] if r["mode"] == mode]
                lines.append(
                    f"| {mode} | {_mm(s[mode]['wall_s'], '{:.1f}')} | {_mm(s[mode]['cpu_s'], '{:.1f}')} | "
                    f"{_mm(s[mode]['cpu_s_per_1000'], '{:.3f}')} | {_others(mine)} |"
                )
        lines.append("")
    if "rebalance" in res and "rebalance_s" in res["rebalance"]:
        s = res["rebalance"]
        lines += [
            f"**An instance SIGKILLed** (3 instances, a stream of {s['rate']:g} rows/s, session timeout "
            f"{s['session_timeout_s']:g} s, commit interval 0.5 s; {s['rebalance_s']['runs']} runs): "
            f"rebalance (kill → the survivors hold all {PARTITIONS} partitions, group stable) "
            f"p50 {s['rebalance_s']['p50']:.1f} s, max {s['rebalance_s']['max']:.1f} s; state restore "
            "(→ the first committed prediction of every moved partition, its keys' models restored from "
            f"the changelog) p50 {s['restore_s_max']['p50']:.1f} s, max {s['restore_s_max']['max']:.1f} s; "
            f"kill → every moved partition predicting again p50 {s['kill_to_resume_s']['p50']:.1f} s, "
            f"max {s['kill_to_resume_s']['max']:.1f} s ({_others(s['runs'])}).{_failed(s)}",
            "",
        ]
    if "broker" in res and "largest_gap_s" in res["broker"]:
        s = res["broker"]
        victims = "; ".join(r["killed"] for r in s["runs"])
        lines += [
            f"**A broker leader SIGKILLed** (2 instances, {s['rate']:g} rows/s, commit interval 0.5 s; "
            f"killed: {victims}): the largest gap in committed predictions after the kill (the node "
            "stays down 30 s; a silence still going on then is counted to its end) "
            f"{_mm(s['largest_gap_s'])} s, per partition {_mm(s['largest_partition_gap_s'])} s; "
            f"in the 10 s before it {_mm(s['largest_gap_before_kill_s'])} s ({_others(s['runs'])})."
            f"{_failed(s)}",
            "",
        ]
    if "rf" in res:
        s = res["rf"]
        lines += [
            f"**Replication 3 / acks=all vs a single broker**, same run, alternating (ingest: "
            f"{s['ingest_rows']:,} rows SSE → raw topic, 4 partitions; "
            f"processor: {s['processor_messages']:,} "
            "messages, exactly-once, one partition, in-process):",
            "",
            "| Kafka | ingest rows/s | processor msg/s | conditions |",
            "|---|---|---|---|",
        ]
        for name in ("3 nodes, RF 3, acks=all, min.insync 2", "single broker, RF 1"):
            if name in s:
                mine = [r for r in s["runs"] if r["target"] == name]
                lines.append(
                    f"| {name} | {_mm(s[name]['ingest_rows_per_s'], '{:,.0f}')} | "
                    f"{_mm(s[name]['processor_msg_per_s'], '{:,.0f}')} | {_others(mine)} |"
                )
        pairs = _pairs(s["runs"])
        if pairs:
            lines += ["", "The load changed a lot between runs; each pair (the cluster, then the single "
                      "broker, back to back) is the fairer comparison. Cluster ÷ single broker per pair: "
                      "ingest "
                      + ", ".join(f"{a:.2f}" for a, _b in pairs) + "; processor "
                      + ", ".join(f"{b:.2f}" for _a, b in pairs) + "."]
        lines.append("")
    for section, reason in res.get("errors", {}).items():
        lines += [f"**Not measured in this run: {section}** ({reason}).", ""]
    return "\n".join(lines).rstrip() + "\n"


def write_report(section: str, path: Path = REPORT) -> None:
    """Put ``section`` in place of the report's "Cluster" section, or append it."""
    text = path.read_text() if path.exists() else ""
    pattern = re.compile(r"^## Cluster\b.*?(?=^## |\Z)", re.M | re.S)
    text = (
        pattern.sub(lambda _m: section + "\n", text)
        if pattern.search(text)
        else text.rstrip() + "\n\n" + section
    )
    path.write_text(text)
