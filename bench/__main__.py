"""``python -m bench [--quick]``: run every benchmark against its baselines and write bench/REPORT.md.

Sections (each one's failure is recorded in the report, the others still run):
ingest (vs the SSE stream alone), processor (vs a hand-written loop and River alone), latency at
a steady rate (vs the seed design), seed design throughput and RMSE, Spark replay (vs pure
Python), models (prequential RMSE per spec vs the seed's SGDRegressor). One private broker on
free ports serves every section. Raw results: bench/results/run.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import machine
from bench.harness import broker_or, summary
from kappaml.logging import configure_logging

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
DEFAULT_CSV = REPO.parent / "shared" / "data" / "co2_processed.csv"
SECTIONS = ("ingest", "processor", "profile", "metrics", "latency", "seed", "replay", "models")


@dataclass(frozen=True)
class Plan:
    """How much of each benchmark to run: --quick is a smoke run, the default is the full one."""

    mode: str
    ingest_rows: int
    ingest_runs: int
    processor_messages: int
    processor_runs: int
    latency_rate: int
    latency_seconds: float
    latency_warmup: float
    latency_runs: int
    seed_latency_runs: int
    latency_alo_runs: int
    processor_commit_interval: float
    ingest_commit_interval: float
    seed_messages: int
    seed_runs: int
    replay_sizes: tuple[int, ...]
    replay_keys: tuple[int, ...]
    replay_repeat: int
    replay_big: int  # sizes >= this run once (1M events take minutes per run)
    replay_mid: int  # sizes >= this run 3 times (the full run must fit in 30 minutes on 2 cores)
    model_orders: tuple[int | None, ...]
    seed_spark_rmse: bool  # the seed's RMSE in its Spark job too (the in-memory replica always runs)
    metrics_messages: int = 10_000  # Prometheus metrics on vs off (bench/bench_metrics.py)
    metrics_pairs: int = 2


QUICK = Plan(
    "quick",
    ingest_rows=20_000,
    ingest_runs=3,
    processor_messages=10_000,
    processor_runs=2,
    latency_rate=1000,
    latency_seconds=6,
    latency_warmup=2,
    latency_runs=1,
    seed_latency_runs=1,
    latency_alo_runs=0,  # the breakdown is for the full run: --quick must stay < 5 min
    processor_commit_interval=0.005,
    ingest_commit_interval=0.0,
    seed_messages=10_000,
    seed_runs=1,
    replay_sizes=(10_000,),
    replay_keys=(1,),
    replay_repeat=1,
    replay_big=10**9,
    replay_mid=10**9,
    model_orders=(None, 0, 1),
    seed_spark_rmse=False,
)
FULL = Plan(
    "full",
    ingest_rows=200_000,
    ingest_runs=5,
    processor_messages=50_000,
    processor_runs=5,
    latency_rate=1000,
    latency_seconds=15,
    latency_warmup=4,
    latency_runs=5,
    seed_latency_runs=3,
    latency_alo_runs=3,
    processor_commit_interval=0.005,
    ingest_commit_interval=0.0,
    seed_messages=50_000,
    seed_runs=3,
    replay_sizes=(10_000, 100_000, 1_000_000),
    replay_keys=(1, 1000),
    replay_repeat=5,
    replay_big=1_000_000,
    replay_mid=100_000,
    model_orders=(None, 0, 1, 2, 3),
    seed_spark_rmse=True,
    metrics_messages=100_000,
    metrics_pairs=6,
)


def run_ingest(plan: Plan, kafka: Any, work: Path) -> dict:
    from bench.bench_ingest import bench_throughput
    from bench.sse_alone import sse_rows_per_s

    runs, alone = [], []
    for i in range(plan.ingest_runs):
        runs.append(bench_throughput(plan.ingest_rows, kafka, work / f"ingest{i}"))
        alone.append(sse_rows_per_s(plan.ingest_rows, work / f"ingest{i}"))
        _note(f"ingest run {i + 1}: {runs[-1]['rows_per_s']:,} rows/s; SSE alone {alone[-1]:,.0f}")
    if any(r["committed_in_raw_topic"] != plan.ingest_rows for r in runs):
        raise RuntimeError(f"ingest lost or duplicated rows: {[r['committed_in_raw_topic'] for r in runs]}")
    return {
        "settings": {"rows": plan.ingest_rows, "commit_interval_s": 0.5, "commit_every": 10_000},
        "kappaml": summary([r["rows_per_s"] for r in runs]),
        "sse_alone": summary(alone),
        "server_peak_rss_mb": max(r["server_peak_rss_mb"] for r in runs),
        "runs": runs,
    }


def run_processor(plan: Plan, kafka: Any, work: Path) -> dict:
    from bench.bench_processor import one_run
    from infra.testing import typed_rows
    from kappaml import synthetic

    csv_path = synthetic.write_csv(work / "proc-rows.csv", plan.processor_messages, seed=1)
    rows = typed_rows(synthetic.dataset(), csv_path)
    runs = []
    for i in range(plan.processor_runs):
        runs.append(one_run(kafka, rows, work / f"proc{i}"))
        rates = ", ".join(f"{k} {v:,.0f}" for k, v in runs[-1].items())
        _note(f"processor run {i + 1}: {rates}")
    return {
        "settings": {
            "messages": plan.processor_messages,
            "partitions": 1,
            "keys": 1,
            "commit_interval_s": 1.0,
        },
        "variants": {name: summary([r[name] for r in runs]) for name in runs[0]},
        "runs": runs,
    }


def run_metrics(plan: Plan, kafka: Any, work: Path) -> dict:
    from bench.bench_metrics import measure
    from infra.testing import typed_rows
    from kappaml import synthetic

    csv_path = synthetic.write_csv(work / "metrics-rows.csv", plan.metrics_messages, seed=1)
    rows = typed_rows(synthetic.dataset(), csv_path)
    return measure(kafka, rows, work / "metrics", plan.metrics_pairs, _note)


def run_profile(plan: Plan, kafka: Any, work: Path) -> dict:
    from bench.profile_processor import profile
    from infra.testing import typed_rows
    from kappaml import synthetic

    csv_path = synthetic.write_csv(work / "profile-rows.csv", plan.processor_messages, seed=1)
    return profile(kafka, typed_rows(synthetic.dataset(), csv_path), work)


def run_latency(plan: Plan, kafka: Any, work: Path) -> dict:
    from bench.latency import measure

    out: dict[str, Any] = {
        "settings": {
            "rate": plan.latency_rate,
            "seconds": plan.latency_seconds,
            "warmup": plan.latency_warmup,
            "processor_commit_interval_s": plan.processor_commit_interval,
            "ingest_commit_interval_s": plan.ingest_commit_interval,
        }
    }
    variants = (
        ("kappaml", "kappaml", "exactly-once", plan.latency_runs),
        ("kappaml_alo", "kappaml", "at-least-once", plan.latency_alo_runs),
        ("seed", "seed", "exactly-once", plan.seed_latency_runs),
    )
    for name, system, guarantee, runs in variants:
        results = []
        for i in range(runs):
            try:
                results.append(
                    measure(
                        kafka,
                        work / "latency",
                        system,
                        plan.latency_rate,
                        plan.latency_seconds,
                        plan.latency_warmup,
                        plan.processor_commit_interval,
                        plan.ingest_commit_interval,
                        guarantee,
                    )
                )
            except Exception as exc:  # recorded, the other runs go on
                results.append({"error": f"{type(exc).__name__}: {exc}"})
            _note(f"latency {name} run {i + 1}: {_short(results[-1])}")
        ok = [r for r in results if "error" not in r]
        figures = ("p50_ms", "p95_ms", "p99_ms", "rate_achieved", "raw_visible_p50_ms", "raw_visible_p99_ms")
        out[name] = {q: summary([r[q] for r in ok]) for q in figures} if ok else {}
        out[f"{name}_runs"] = results
    return out


def run_seed(plan: Plan, kafka: Any, work: Path, csv: Path) -> dict:
    from bench import seed_design
    from infra.testing import produce_raw, typed_rows
    from kappaml import synthetic
    from kappaml.dataset import builtin
    from kappaml.topics import Topics, ensure_topics

    dataset = builtin("co2")
    out: dict[str, Any] = {
        "settings": {
            "trigger": "default (as soon as the previous batch ends)",
            "maxOffsetsPerTrigger_throughput": None,
            "maxOffsetsPerTrigger_rmse": seed_design.RMSE_BATCH,
            "model": "sklearn SGDRegressor() defaults, unscaled features",
            "master": "local[2]",
        }
    }
    topics = Topics(prefix=f"seed{uuid.uuid4().hex[:6]}", raw_partitions=1)
    ensure_topics(kafka, topics.specs())
    csv_path = synthetic.write_csv(work / "seed-rows.csv", plan.seed_messages, seed=1)
    produce_raw(kafka, topics.raw, dataset, typed_rows(synthetic.dataset(), csv_path))
    runs = []
    for i in range(plan.seed_runs):
        runs.append(seed_design.throughput(kafka, topics.raw, dataset, plan.seed_messages, work))
        _note(
            f"seed throughput run {i + 1}: {runs[-1]['msg_per_s']:,.0f} msg/s ({runs[-1]['batches']} batches)"
        )
    out["throughput"] = summary([r["msg_per_s"] for r in runs])
    out["throughput_runs"] = runs
    if csv.exists():
        rows = typed_rows(dataset, csv)
        co2 = Topics(prefix=f"seedco2{uuid.uuid4().hex[:6]}", raw_partitions=1)
        ensure_topics(kafka, co2.specs())
        produce_raw(kafka, co2.raw, dataset, rows)
        if plan.seed_spark_rmse:
            out["rmse_spark_file_order"] = seed_design.rmse_spark(kafka, co2.raw, dataset, len(rows), work)
        mem = [seed_design.rmse_in_memory(*seed_design.arrays(dataset, rows, s)) for s in plan.model_orders]
        out["rmse_in_memory"] = {
            "orders": [_order(s) for s in plan.model_orders],
            "runs": mem,
            "rmse": summary([m["rmse"] for m in mem]),
        }
        _note(f"seed RMSE (in memory, median): {out['rmse_in_memory']['rmse']['median']:.1f}")
    return out


def run_replay(plan: Plan, kafka: Any, work: Path) -> dict:
    import os

    from bench.bench_replay import scenario
    from bench.memory import TreePeak
    from kappaml.models import DEFAULT_SPEC

    out: dict[str, Any] = {"settings": {"spec": DEFAULT_SPEC, "master": "local[2]", "partitions": 2}}
    fixed = scenario(kafka, work, 1, 1, DEFAULT_SPEC, "local[2]", min(plan.replay_repeat, 3))
    out["fixed_cost"] = summary(fixed["spark_runs_s"])
    scenarios = []
    with TreePeak(os.getpid(), match="spark") as peak:
        for keys in plan.replay_keys:
            for n in plan.replay_sizes:
                repeat = (
                    1
                    if n >= plan.replay_big
                    else min(3, plan.replay_repeat)
                    if n >= plan.replay_mid
                    else plan.replay_repeat
                )
                r = scenario(kafka, work, n, keys, DEFAULT_SPEC, "local[2]", repeat)
                r["python"], r["spark"] = summary(r["python_runs_s"]), summary(r["spark_runs_s"])
                scenarios.append(r)
                _note(
                    f"replay {n} events {keys} keys: python {r['python']['median']:.1f} s, "
                    f"spark {r['spark']['median']:.1f} s"
                )
    out["scenarios"] = scenarios
    out["spark_peak_rss_mb"] = peak.stop()
    return out


def run_models(plan: Plan, csv: Path) -> dict:
    from bench.bench_models import load, prequential_detail, shuffled
    from kappaml.dataset import builtin
    from kappaml.models import DEFAULT_SPEC, SPECS

    if not csv.exists():
        raise FileNotFoundError(f"{csv} not found: prequential RMSE needs the real CO2 CSV")
    dataset = builtin("co2")
    stream = load(csv, dataset)
    specs = {}
    for spec in SPECS:
        runs = [prequential_detail(spec, dataset, shuffled(stream, s)) for s in plan.model_orders]
        specs[spec] = {
            "rmse": summary([r[0] for r in runs]),
            "rmse_without_first_row": summary([r[1] for r in runs]),
            "us_per_row": summary([r[2] * 1e6 for r in runs]),
        }
        _note(f"model {spec}: RMSE median {specs[spec]['rmse']['median']:.2f}")
    return {
        "rows": len(stream),
        "default": DEFAULT_SPEC,
        "orders": [_order(s) for s in plan.model_orders],
        "specs": specs,
    }


def _order(seed: int | None) -> str:
    return "file order" if seed is None else f"shuffle {seed}"


def _short(result: dict) -> str:
    if "error" in result:
        return result["error"][:200]
    r = result
    return f"p50 {r['p50_ms']} p95 {r['p95_ms']} p99 {r['p99_ms']} ms at {r['rate_achieved']}/s"


def _note(text: str) -> None:
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {text}\n")
    sys.stderr.flush()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a smoke run of every section (about 5 minutes)")
    p.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated sections of {SECTIONS}")
    p.add_argument("--csv", type=Path, default=DEFAULT_CSV, help="the real CO2 CSV (RMSE sections)")
    p.add_argument("--bootstrap", help="an existing broker (default: a private one on free ports)")
    p.add_argument("--report", type=Path, default=REPO / "bench" / "REPORT.md")
    p.add_argument("--from-json", type=Path, help="only rewrite the report from a saved run.json")
    p.add_argument(
        "--merge",
        action="store_true",
        help="keep the other sections of bench/results/run.json and replace only those run now",
    )
    args = p.parse_args(argv)
    from bench import report

    if args.from_json:
        report.write(json.loads(args.from_json.read_text()), args.report)
        return 0
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(only) - set(SECTIONS)
    if unknown:
        p.error(f"unknown sections {sorted(unknown)}; valid: {', '.join(SECTIONS)}")
    plan = QUICK if args.quick else FULL
    configure_logging("WARNING")
    started = time.monotonic()
    run: dict[str, Any] = {
        "mode": plan.mode,
        "plan": asdict(plan),
        "started": datetime.now(UTC).isoformat(),
        "machine": machine.describe(),
        "load_start": machine.load_average(),
        "cpu_start": machine.cpu_seconds(),
        "csv": str(args.csv) if args.csv.exists() else None,
        "sections": {},
    }
    _note(f"{plan.mode} run; load {run['load_start']['loadavg']}")
    with (
        tempfile.TemporaryDirectory(prefix="kappaml-bench-") as tmp,
        broker_or(args.bootstrap, Path(tmp)) as kafka,
    ):
        work = Path(tmp)
        jobs = {
            "ingest": lambda: run_ingest(plan, kafka, work),
            "processor": lambda: run_processor(plan, kafka, work),
            "profile": lambda: run_profile(plan, kafka, work),
            "metrics": lambda: run_metrics(plan, kafka, work),
            "latency": lambda: run_latency(plan, kafka, work),
            "seed": lambda: run_seed(plan, kafka, work, args.csv),
            "replay": lambda: run_replay(plan, kafka, work),
            "models": lambda: run_models(plan, args.csv),
        }
        for name in SECTIONS:
            if name not in only:
                continue
            t0 = time.monotonic()
            _note(f"section {name}")
            try:
                result = jobs[name]()
            except Exception as exc:  # one broken benchmark must not hide the others
                traceback.print_exc()
                result = {"error": f"{type(exc).__name__}: {exc}"}
            result["seconds"] = round(time.monotonic() - t0, 1)
            run["sections"][name] = result
            if not args.merge:
                _save(run)
    run["load_end"] = machine.load_average()
    run["cpu_others"] = machine.others_cpu(run["cpu_start"], machine.cpu_seconds())
    run["duration_s"] = round(time.monotonic() - started, 1)
    if args.merge and (RESULTS / "run.json").exists():
        previous = json.loads((RESULTS / "run.json").read_text())
        previous["sections"].update(run["sections"])
        previous.setdefault("merged", []).append(
            {key: run[key] for key in ("mode", "started", "load_start", "load_end", "duration_s")}
            | {"sections": sorted(run["sections"])}
        )
        run = previous
    _save(run)
    report.write(run, args.report)
    _note(f"done in {run['duration_s']:.0f} s; report {args.report}")
    return 0


def _save(run: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "run.json").write_text(json.dumps(run, indent=2, default=str) + "\n")


if __name__ == "__main__":
    sys.exit(main())
