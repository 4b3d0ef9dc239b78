"""Adapting by itself (issue 19): served RMSE of ``--promotion manual`` vs ``auto``, and the gate's cost.

    python -m bench.bench_adapt [--csv PATH] [--rows N] [--shuffles 0,1,2] [--drifts abrupt,gradual,recurring]
                                [--seed 7] [--rate 400] [--runs 1] [--cost-runs 3] [--cost-rows 10000]
                                [--bootstrap HOST:PORT] [--no-report] [--render-only]

The real processor (in this process, as bench_lifecycle runs it) against a private broker started
with the shipped test kit, one partition, exactly-once, one global model. The rows are written
while it runs, at ``--rate`` rows/s, by ``bench.paced_feed`` (a process of its own): a live
stream, as users run it; a backlog written up front would put the gate's promotions behind every
row. The scenarios:

- the CO2 rows (``--csv``, by default /work/shared/data/co2_processed.csv, read where it is) in
  file order, and ``--shuffles`` seeded shuffles of them (``random.Random(seed).shuffle``, as
  bench_models shuffles): no drift was put in (the file is sorted, so file order is counted as a
  drift scenario: the error level really moves there, ADWIN flags 5 rises);
- ``--drifts``: synthetic CO2 rows (kappaml.synthetic, seed ``--seed``) whose target changes
  concept abruptly, gradually, or back and forth (``kappaml.synthetic.DRIFTS``).

Per scenario the processor runs with ``rls`` serving and ``--promotion auto``'s default
challengers (kappaml.lineup.AUTO_SPECS):

- ``manual``: ``--promotion manual`` with those challengers: ``rls`` serves throughout, and each
  challenger learns exactly what a run of its spec alone would, so the run gives every spec's
  RMSE, and the best single spec in hindsight;
- ``auto``: ``--promotion auto`` (the gate's defaults), same challengers;
- ``auto + background drift``: also ``--drift-policy background``, only where the processor
  offers that policy (``kappaml.drift.POLICIES``).

The cost per message: ``--cost-runs`` rounds of ``alone`` (``rls`` without challengers, manual:
today's default), ``manual`` and ``auto`` (order alternating) over a backlog of ``--cost-rows``
synthetic rows written before the processor starts, so that no idle time is counted.

Figures: the RMSE of the *served* predictions (the predictions topic); the processor's CPU per
message (this process's CPU from its first to its last message: Quix, the models, librdkafka's
threads), the gate's own time per message (its calls timed), each spec's step (``learn_us``).
Goals (issue 19): on every drift scenario the served RMSE within 1.2x the best single spec; on
every scenario without drift within 1.02x manual. Load: other processes' CPU (/proc/stat's busy
time minus this process tree's, the private broker included).
Writes bench/results/adapt.json and the "Adapting by itself" section of bench/REPORT.md.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.adapt_probe import Clock, cpu_reading, others_since, time_gate
from bench.adapt_report import RESULTS, render, write_report
from bench.harness import broker_or
from bench.machine import describe, load_average
from infra.testing import REPO, produce_raw, read_all, typed_rows
from kappaml import synthetic
from kappaml.dataset import Dataset, builtin
from kappaml.drift import POLICIES, DriftConfig
from kappaml.gate import GateConfig
from kappaml.kafka import KafkaSettings
from kappaml.lineup import CONTROL_KEY_BYTES, Promotion, auto_challengers
from kappaml.logging import configure_logging
from kappaml.models import DEFAULT_SPEC
from kappaml.records import Prediction
from kappaml.topics import Topics, ensure_topics
from processor import Processor, ProcessorSettings

SHARED_CSV = Path(__file__).resolve().parents[2] / "shared" / "data" / "co2_processed.csv"
BACKGROUND = "background"
MODES = ("manual", "auto", "auto + background drift")  # the served RMSE, on every scenario
COST_MODES = ("alone", "manual", "auto")  # the cost per message, on a backlog


def background_offered() -> bool:
    """Does the processor offer the ``background`` drift policy (its --drift-policy choices)?"""
    return BACKGROUND in POLICIES


def _settings(mode: str, kafka: KafkaSettings, dataset: Dataset, topics: Topics,
              state: Path) -> ProcessorSettings:
    challengers = () if mode == "alone" else auto_challengers(DEFAULT_SPEC)
    policy = BACKGROUND if mode == "auto + background drift" else "alert"
    return ProcessorSettings(dataset=dataset, model_spec=DEFAULT_SPEC, kafka=kafka, topics=topics,
                             state_dir=state, consumer_group=f"adapt-{uuid.uuid4().hex[:8]}",
                             challengers=challengers,
                             drift=DriftConfig("adwin", policy),  # type: ignore[arg-type]
                             promotion="manual" if mode in ("alone", "manual") else "auto")


def _rmse(sq: list[float]) -> float:
    return math.sqrt(math.fsum(sq) / len(sq)) if sq else float("nan")


def _stop_when_done(processor: Processor, feeder: subprocess.Popen[bytes] | None, feed: bytes, clock: Clock,
                    n: int, errors: list[str]) -> None:
    """Feed the rows, then stop the processor once it has had every row and has been quiet for 3 s."""
    if feeder is not None:
        out, err = feeder.communicate(feed)
        if feeder.returncode != 0:
            errors.append(f"the feeder failed ({feeder.returncode}): {(out + err).decode()[-2000:]}")
    deadline, seen, since = time.monotonic() + 600, -1, time.monotonic()
    while time.monotonic() < deadline:
        if clock.messages != seen:
            seen, since = clock.messages, time.monotonic()
        elif (seen >= n or errors) and time.monotonic() - since >= 3:
            break
        time.sleep(0.2)
    processor.stop()


def one_run(kafka: KafkaSettings, dataset: Dataset, rows: list[dict[str, Any]], work: Path, mode: str,
            rate: float | None) -> dict[str, Any]:
    """One processor over one scenario, its rows written live at ``rate`` rows/s by bench.paced_feed
    (None: all written before it starts, a backlog: for the cost per message, without idle time)."""
    topics = Topics(prefix=f"adapt{uuid.uuid4().hex[:8]}", raw_partitions=1)
    ensure_topics(kafka, topics.specs())
    if rate is None:
        produce_raw(kafka, topics.raw, dataset, rows)
    settings = _settings(mode, kafka, dataset, topics, work / f"state-{topics.prefix}")
    cpu0, load0 = cpu_reading(), load_average()
    processor = Processor(settings)
    clock = processor.timer.message = Clock(processor.timer.message)  # type: ignore[method-assign]
    gate_s = time_gate(processor)
    feeder = None if rate is None else subprocess.Popen(
        [sys.executable, "-m", "bench.paced_feed", "--bootstrap", kafka.bootstrap_servers,
         "--topic", topics.raw, "--group", settings.group, "--dataset", dataset.name, "--rate", str(rate)],
        cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    errors: list[str] = []
    feed = "".join(json.dumps(r) + "\n" for r in rows).encode()
    stopper = threading.Thread(target=_stop_when_done, daemon=True,
                               args=(processor, feeder, feed, clock, len(rows), errors))
    stopper.start()
    try:
        processor.run()
    except BaseException:
        if feeder is not None:
            feeder.kill()  # the stopper sees it fail and ends too
        raise
    stopper.join()
    others = others_since(cpu0, cpu_reading())
    if errors:
        raise RuntimeError(f"{mode}: {errors[0]}")
    n, specs = len(rows), settings.lineup.specs
    served = [Prediction.decode(v) for _k, v, _p, _o in
              read_all(kafka, topics.predictions, expect=n, timeout=120)]
    if len(served) != n:
        raise RuntimeError(f"{mode}: {len(served)} served predictions of {n} rows")
    shadow = [Prediction.decode(v) for _k, v, _p, _o in
              read_all(kafka, topics.challengers, expect=n * (len(specs) - 1), timeout=120)
              ] if len(specs) > 1 else []
    by_spec: dict[str, list[float]] = {}
    for p in (*served, *shadow):
        by_spec.setdefault(p.spec, []).append((p.y_pred - p.y_true) ** 2)
    raw = read_all(kafka, topics.raw)
    data_offsets = sorted(o for k, _v, _p, o in raw if k != CONTROL_KEY_BYTES)
    promotions = []
    for k, v, _p, o in raw:
        if k == CONTROL_KEY_BYTES:
            promo = Promotion.decode(v)
            ev = promo.evidence
            # decided: rows the partition had scored when the gate decided (a takeover: rows paired);
            # after_rows: the rows before it took effect (the gate's own: at its decision, ``after``);
            # record_rows: the rows before its control record landed in the log.
            took_effect = promo.effective_after(o)
            promotions.append({"after_rows": sum(1 for d in data_offsets if d <= took_effect),
                               "record_rows": sum(1 for d in data_offsets if d < o), "spec": promo.spec,
                               "serving": ev.serving if ev else None, "decided": ev.scored if ev else None,
                               "reason": promo.reason})
    latency = sorted(p.processed_ts - p.event_ts for p in served if p.event_ts is not None)
    return {
        "mode": mode, "rows": n, "rate": rate, "messages": clock.messages,
        "served_rmse": _rmse([(p.y_pred - p.y_true) ** 2 for p in served]),
        "spec_rmse": {s: _rmse(v) for s, v in sorted(by_spec.items())},
        "spec_predictions": {s: len(v) for s, v in sorted(by_spec.items())},
        "promotions": promotions,
        "cpu_us_per_msg": (clock.last - clock.first) / max(clock.messages - 1, 1) * 1e6,
        "latency_ms": {"p50": latency[len(latency) // 2], "p99": latency[int(len(latency) * 0.99)],
                       "max": latency[-1]},
        "gate_us_per_msg": gate_s[0] / max(clock.messages, 1) * 1e6,
        "learn_us": {s: processor.learn_cost.micros(s) for s in specs},
        "others_cores": others["others_cores"], "loadavg": load0["loadavg"][0],
    }


def scenarios(csv: Path | None, limit: int | None, shuffles: list[int], drifts: list[str], seed: int,
              work: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """(name, kind, rows) of every scenario, and what was skipped and why."""
    out, skipped = [], []
    if csv is not None and csv.exists():
        co2 = typed_rows(builtin("co2"), csv)
        out.append({"name": "CO2, file order", "kind": "drift (sorted file)", "rows": co2[:limit]})
        for s in shuffles:
            mixed = list(co2)
            random.Random(s).shuffle(mixed)
            out.append({"name": f"CO2, shuffle {s}", "kind": "no drift", "rows": mixed[:limit]})
    else:
        skipped.append(f"the CO2 scenarios: {csv} is not there (shared data is optional; --csv PATH)")
    n = limit or 7_385
    for drift in drifts:
        path = synthetic.write_csv(work / f"{drift}.csv", n, seed=seed, drift=drift)
        out.append({"name": f"synthetic, {drift}", "kind": "drift", "rows": typed_rows(builtin("co2"), path)})
    return out, skipped


def _retried(res: dict[str, Any], scenario: str, mode: str, run: Any) -> dict[str, Any]:
    """The run; once more if it fails (the failure recorded: the report lists it)."""
    try:
        return run()
    except Exception as exc:  # e.g. Quix handing a changelog message to processing after a rebalance
        res.setdefault("failed_runs", []).append(f"{scenario}, {mode}: {type(exc).__name__}: {exc}"[:300])
        sys.stdout.write(f"failed, run again: {res['failed_runs'][-1]}\n")
        return run()


def _say(scenario: str, runs: Any) -> None:
    for r in runs:
        keys = ("mode", "served_rmse", "promotions", "cpu_us_per_msg", "gate_us_per_msg", "others_cores")
        sys.stdout.write(json.dumps({"scenario": scenario, **{k: r[k] for k in keys}}) + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--csv", type=Path, default=SHARED_CSV, help="the CO2 rows (default: the shared copy)")
    p.add_argument("--rows", type=int, default=None,
                   help="at most this many rows per scenario (default: all; 7,385 synthetic)")
    p.add_argument("--shuffles", default="0,1,2", help="comma-separated shuffle seeds of the CO2 rows")
    p.add_argument("--drifts", default=",".join(synthetic.DRIFTS), help="synthetic drift scenarios")
    p.add_argument("--seed", type=int, default=7, help="of the synthetic rows")
    p.add_argument("--rate", type=float, default=400.0,
                   help="rows per second written to the raw topic while the processor runs (a live stream)")
    p.add_argument("--runs", type=int, default=1, help="runs of every mode per scenario (order alternating)")
    p.add_argument("--cost-runs", type=int, default=3, help="rounds of the cost runs (alone, manual, auto)")
    p.add_argument("--cost-rows", type=int, default=10_000, help="synthetic rows of each cost run's backlog")
    p.add_argument("--bootstrap", help="use this broker instead of a private one")
    p.add_argument("--no-report", action="store_true", help="do not touch bench/REPORT.md")
    p.add_argument("--render-only", action="store_true",
                   help="write the section from bench/results/adapt.json, run nothing")
    args = p.parse_args(argv)
    if args.render_only:
        write_report(render(json.loads((RESULTS / "adapt.json").read_text())))
        return 0
    configure_logging("WARNING")
    modes = [m for m in MODES if m != "auto + background drift" or background_offered()]
    started, cpu0, t0 = load_average(), cpu_reading(), time.monotonic()
    res: dict[str, Any] = {"started": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "machine": describe(),
                           "load_start": started, "argv": sys.argv[1:] if argv is None else argv,
                           "challengers": list(auto_challengers(DEFAULT_SPEC)), "serving": DEFAULT_SPEC,
                           "modes": modes, "background_offered": background_offered(), "rate": args.rate,
                           "gate": asdict(GateConfig()),
                           "scenarios": []}
    if not background_offered():
        res["note"] = f"the processor offers no {BACKGROUND!r} drift policy (POLICIES: {', '.join(POLICIES)})"
    with tempfile.TemporaryDirectory(prefix="kappaml-bench-adapt-") as tmp, broker_or(args.bootstrap,
                                                                                       Path(tmp)) as kafka:
        work = Path(tmp)
        shuffles = [int(s) for s in args.shuffles.split(",") if s]
        drifts = [d for d in args.drifts.split(",") if d]
        cases, res["skipped"] = scenarios(args.csv, args.rows, shuffles, drifts, args.seed, work)
        for message in res["skipped"]:
            sys.stdout.write(f"skipped: {message}\n")
        turn = 0
        cost_rows = typed_rows(builtin("co2"), synthetic.write_csv(work / "cost.csv", args.cost_rows,
                                                                   seed=args.seed + 1))
        res["cost"] = {"rows": args.cost_rows, "rounds": []}
        for _ in range(args.cost_runs):
            order = COST_MODES if turn % 2 == 0 else COST_MODES[::-1]  # alternate: no order favoured
            res["cost"]["rounds"].append({m: one_run(kafka, builtin("co2"), cost_rows, work, m, None)
                                          for m in order})
            _say("cost", res["cost"]["rounds"][-1].values())
            turn += 1
        for case in cases:
            runs: dict[str, list[dict]] = {m: [] for m in modes}
            for _ in range(args.runs):
                for mode in (modes if turn % 2 == 0 else modes[::-1]):  # alternate: no order favoured
                    runs[mode].append(_retried(res, case["name"], mode, lambda m=mode, c=case: one_run(
                        kafka, builtin("co2"), c["rows"], work, m, args.rate)))
                    _say(case["name"], runs[mode][-1:])
                turn += 1
            res["scenarios"].append({"name": case["name"], "kind": case["kind"], "rows": len(case["rows"]),
                                     "runs": runs})
    res["duration_s"] = round(time.monotonic() - t0, 1)
    res["load_end"] = load_average()
    res["cpu_others"] = others_since(cpu0, cpu_reading())
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "adapt.json").write_text(json.dumps(res, indent=1) + "\n")
    text = render(res)
    if not args.no_report:
        write_report(text)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
