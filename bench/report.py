"""bench/REPORT.md and its plots from one run's results (bench/results/run.json)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any


def _f(v: Any, digits: int = 0) -> str:
    if v is None:
        return "–"
    if isinstance(v, float) and not math.isfinite(v):
        return "diverged (∞)" if v > 0 else "nan"
    if abs(v) >= 1e7:
        return f"{v:.1e}"
    return f"{v:,.{digits}f}"


def _mm(s: dict | None, digits: int = 0) -> str:
    """'median (min–max, n runs)' of a summary."""
    if not s:
        return "not measured"
    return f"{_f(s['median'], digits)} ({_f(s['min'], digits)}–{_f(s['max'], digits)}, {s['runs']} runs)"


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or not b or not all(math.isfinite(x) for x in (a, b)):
        return "–"
    r = a / b
    return f"{r:.2f}×" if r >= 0.01 else f"{r:.1e}×"


def _med(s: dict | None) -> float | None:
    return s["median"] if s else None


def _yes(ok: bool | None) -> str:
    return "–" if ok is None else ("**met**" if ok else "**missed**")


def headline(run: dict) -> list[list[str]]:
    """Rows: figure, kappaml, baseline, ratio, goal, met."""
    sec = run["sections"]
    rows: list[list[str]] = []
    ing = sec.get("ingest", {})
    if "kappaml" in ing:
        k, b = ing["kappaml"], ing["sse_alone"]
        rows.append(
            [
                "ingest rows/s (SSE → raw topic, transactional)",
                _mm(k),
                f"SSE stream alone {_f(_med(b))}",
                _ratio(_med(k), _med(b)),
                "≥ 50,000 rows/s",
                _yes(_med(k) >= 50_000),
            ]
        )
    proc = sec.get("processor", {}).get("variants")
    if proc:
        loop = _med(proc["hand-written loop"])
        river = _med(proc["River alone"])
        floor = proc.get("Quix Streams alone")
        quix = f"; Quix Streams alone {_f(_med(floor))}" if floor else ""
        for g in ("exactly-once", "at-least-once"):
            s = proc[f"kappaml {g}"]
            ok = None
            goal = "–"
            if g == "exactly-once":
                ok = _med(s) >= 25_000 and _med(s) >= 0.7 * loop
                goal = "≥ 25,000 msg/s per core and ≥ 70% of the loop"
            rows.append(
                [
                    f"processor msg/s, {g} (one partition, one core)",
                    _mm(s),
                    f"hand-written loop {_f(loop)}; River alone {_f(river)}{quix}",
                    f"{_ratio(_med(s), loop)} loop; {_ratio(_med(s), river)} River",
                    goal,
                    _yes(ok),
                ]
            )
    lat = sec.get("latency", {})
    if lat.get("kappaml"):
        seed = lat.get("seed") or {}
        for q in ("p50_ms", "p95_ms", "p99_ms"):
            k, b = lat["kappaml"][q], seed.get(q)
            ok = None
            goal = "–"
            if q == "p99_ms":
                goal = "≤ 50 ms and < seed"
                ok = _med(k) <= 50 and (b is None or _med(k) < _med(b))
            rows.append(
                [
                    f"latency {q[:3]} ms at {lat['settings']['rate']:,} msg/s (exactly-once)",
                    _mm(k),
                    f"seed design {_mm(b) if b else 'not measured'}",
                    _ratio(_med(k), _med(b)),
                    goal,
                    _yes(ok),
                ]
            )
        alo = lat.get("kappaml_alo") or {}
        if alo:
            rows.append(
                [
                    "latency p50 / p99 ms, processor at-least-once (where the time goes)",
                    f"{_mm(alo['p50_ms'])} / {_mm(alo['p99_ms'])}",
                    "–",
                    "–",
                    "–",
                    "–",
                ]
            )
        if lat["kappaml"].get("raw_visible_p50_ms"):
            k = lat["kappaml"]
            rows.append(
                [
                    "of which SSE + ingest: raw record visible, p50 / p99 ms",
                    f"{_mm(k['raw_visible_p50_ms'])} / {_mm(k['raw_visible_p99_ms'])}",
                    "–",
                    "–",
                    "–",
                    "–",
                ]
            )
    rep = sec.get("replay", {})
    fixed = _med(rep.get("fixed_cost"))
    for s in rep.get("scenarios", []):
        py, sp = _med(s["python"]), _med(s["spark"])
        if s["keys"] == 1:
            budget = 1.5 * py + fixed
            rows.append(
                [
                    f"replay s, {s['events']:,} events, 1 key",
                    f"Spark {_mm(s['spark'], 1)}",
                    f"pure Python {_f(py, 1)} + Spark fixed cost {_f(fixed, 1)}",
                    f"{_ratio(sp, py + fixed)} (Python + fixed)",
                    "≤ 1.5 × Python + start-up",
                    _yes(sp <= budget),
                ]
            )
        else:
            rows.append(
                [
                    f"replay s, {s['events']:,} events, {s['keys']:,} keys",
                    f"Spark {_mm(s['spark'], 1)}",
                    f"pure Python {_f(py, 1)}",
                    _ratio(sp, py),
                    "–",
                    "–",
                ]
            )
    mod = sec.get("models", {}).get("specs")
    if mod:
        d = run["sections"]["models"]["default"]
        seed_rmse = (sec.get("seed", {}).get("rmse_in_memory") or {}).get("rmse")
        rows.append(
            [
                f"prequential RMSE g/km on CO2, {d} (default)",
                _mm(mod[d]["rmse"], 2),
                f"seed SGDRegressor per micro-batch {_mm(seed_rmse, 0) if seed_rmse else 'not measured'}",
                _ratio(_med(mod[d]["rmse"]), _med(seed_rmse)),
                "≤ 5.0 g/km",
                _yes(_med(mod[d]["rmse"]) <= 5.0),
            ]
        )
    return rows


def _table(head: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def memory_rows(run: dict) -> list[list[str]]:
    sec = run["sections"]
    rows = []
    for system in ("kappaml", "seed"):
        runs = [r for r in sec.get("latency", {}).get(f"{system}_runs", []) if "error" not in r]
        for prog in ("sse-server", "ingest", "processor"):
            vals = [r["peak_rss_mb"].get(prog) for r in runs if r["peak_rss_mb"].get(prog)]
            if vals and (system == "kappaml" or prog == "processor"):
                name = (
                    "seed design Spark job (JVM + Python driver)" if system == "seed" else f"kappaml {prog}"
                )
                rows.append([name, _f(max(vals)), "latency run at 1,000 msg/s"])
    if sec.get("ingest", {}).get("server_peak_rss_mb"):
        rows.append(["sse-server", _f(sec["ingest"]["server_peak_rss_mb"]), "ingest throughput run (rate 0)"])
    if sec.get("replay", {}).get("spark_peak_rss_mb"):
        rows.append(
            [
                "Spark replay (spark-submit: JVM + Python driver + workers)",
                _f(sec["replay"]["spark_peak_rss_mb"]),
                "replay runs (peak over all scenarios)",
            ]
        )
    seed_runs = sec.get("seed", {}).get("throughput_runs", [])
    if seed_runs:
        rows.append(
            [
                "seed design Spark job",
                _f(max(r["peak_rss_mb"] for r in seed_runs)),
                "throughput run over the backlog",
            ]
        )
    return rows


def plots(run: dict, folder: Path) -> list[tuple[str, str]]:
    """Draw the figures of ``run`` as small PNGs into ``folder``; (file name, title) of each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    made: list[tuple[str, str]] = []
    sec = run["sections"]

    def bars(ax: Any, items: list[tuple[str, dict]], color: str, xlabel: str, log: bool = False) -> None:
        names = [n for n, _ in items]
        med = [s["median"] for _, s in items]
        lo = [s["median"] - s["min"] for _, s in items]
        hi = [s["max"] - s["median"] for _, s in items]
        ax.barh(names, med, xerr=[lo, hi], color=color, capsize=3)
        ax.set_xlabel(xlabel)
        if log:
            ax.set_xscale("log")
        ax.invert_yaxis()

    def save(fig: Any, name: str, title: str) -> None:
        fig.tight_layout()
        fig.savefig(folder / name, dpi=80)
        plt.close(fig)
        made.append((name, title))

    proc = sec.get("processor", {}).get("variants")
    ing = sec.get("ingest", {})
    if proc or "kappaml" in ing:
        fig, axes = plt.subplots(2, 1, figsize=(7, 4.2))
        if "kappaml" in ing:
            bars(
                axes[0],
                [("kappaml ingest", ing["kappaml"]), ("SSE stream alone", ing["sse_alone"])],
                "#4c78a8",
                "rows/s (median, min–max)",
            )
        if proc:
            bars(axes[1], list(proc.items()), "#f58518", "msg/s (median, min–max)")
        save(fig, "throughput.png", "Ingest rows/s and processor msg/s")
    lat = sec.get("latency", {})
    if lat.get("kappaml"):
        fig, ax = plt.subplots(figsize=(7, 3.2))
        qs = ("p50_ms", "p95_ms", "p99_ms")
        systems = (("kappaml", "#4c78a8"), ("kappaml_alo", "#72b7b2"), ("seed", "#e45756"))
        labels = {
            "kappaml": "kappaml exactly-once",
            "kappaml_alo": "kappaml at-least-once",
            "seed": "seed design (Spark + SGD)",
        }
        for i, (system, color) in enumerate(systems):
            s = lat.get(system) or {}
            if not s:
                continue
            med = [s[q]["median"] for q in qs]
            err = [[s[q]["median"] - s[q]["min"] for q in qs], [s[q]["max"] - s[q]["median"] for q in qs]]
            ax.bar(
                [j + i * 0.27 for j in range(3)],
                med,
                0.27,
                yerr=err,
                capsize=3,
                color=color,
                label=labels[system],
            )
        ax.axhline(50, color="grey", ls="--", lw=1, label="goal p99 50 ms")
        ax.set_xticks([j + 0.27 for j in range(3)], ["p50", "p95", "p99"])
        ax.set_yscale("log")
        ax.set_ylabel("ms (log)")
        ax.set_title(f"event → prediction visible, at {lat['settings']['rate']:,} msg/s", fontsize=9)
        ax.legend(fontsize=8)
        save(fig, "latency.png", "Event-to-prediction latency")
    rep = sec.get("replay", {})
    if rep.get("scenarios"):
        fig, ax = plt.subplots(figsize=(7, 3.5))
        for keys, ls in ((1, "-"), (1000, "--")):
            sc = sorted(
                (s for s in rep["scenarios"] if (s["keys"] == 1) == (keys == 1)), key=lambda s: s["events"]
            )
            if not sc:
                continue
            ev = [s["events"] for s in sc]
            label = "1 key" if keys == 1 else f"{sc[0]['keys']} keys"
            ax.plot(
                ev,
                [s["spark"]["median"] for s in sc],
                ls,
                marker="o",
                color="#e45756",
                label=f"Spark, {label}",
            )
            ax.plot(
                ev,
                [s["python"]["median"] for s in sc],
                ls,
                marker="s",
                color="#4c78a8",
                label=f"pure Python, {label}",
            )
        ax.axhline(
            rep["fixed_cost"]["median"], color="grey", lw=1, ls=":", label="Spark fixed cost (1 event)"
        )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("events replayed")
        ax.set_ylabel("seconds (median)")
        ax.legend(fontsize=7)
        save(fig, "replay.png", "Replay time vs events")
    mod = sec.get("models", {}).get("specs")
    if mod:
        items = [(spec, s["rmse"]) for spec, s in mod.items()]
        seed_rmse = (sec.get("seed", {}).get("rmse_in_memory") or {}).get("rmse")
        if seed_rmse and math.isfinite(seed_rmse["max"]):
            items.append(("seed SGDRegressor", seed_rmse))
        fig, ax = plt.subplots(figsize=(7, 3.2))
        bars(ax, items, "#54a24b", "prequential RMSE, g/km (median, min–max over orders; log)", log=True)
        ax.axvline(5.0, color="grey", ls="--", lw=1)
        save(fig, "rmse.png", "Prequential RMSE on the CO2 data")
    mem = memory_rows(run)
    if mem:
        fig, ax = plt.subplots(figsize=(7, 3))
        ax.barh([r[0][:40] for r in mem], [float(r[1].replace(",", "")) for r in mem], color="#b279a2")
        ax.set_xlabel("peak RSS, MB (process tree, sampled)")
        ax.invert_yaxis()
        save(fig, "memory.png", "Peak memory per program")
    return made


def others_sentence(run: dict) -> str:
    """What other processes used of the machine during the run, as measured (bench/machine.py)."""
    others = run.get("cpu_others")
    if not others:
        return "The CPU time of other processes was not measured in this run. "
    return (f"Other processes than this run's used {others['others_cpu_s']:,.1f} CPU-seconds during its "
            f"{others['wall_s']:,.0f} s, i.e. {others['others_cores']:.2f} of the machine's "
            f"{run['machine'].get('cores', '?')} cores on average (machine busy time from /proc/stat "
            "minus this run's own processes). ")


def render(run: dict, made: list[tuple[str, str]]) -> str:
    m, sec = run["machine"], run["sections"]
    ls, le = run["load_start"], run.get("load_end") or {}
    out = [f"# kappaml benchmark report ({run['mode']} run)", ""]
    out.append(
        f"Generated by `python -m bench{' --quick' if run['mode'] == 'quick' else ''}` "
        f"(`make bench`) on {run['started'][:16].replace('T', ' ')} UTC, in "
        f"{_f(run.get('duration_s'))} s. Every figure is the median of the runs made in this same run "
        "with its min–max; each ratio divides by a baseline measured in this same run. "
        "Raw numbers: `bench/results/run.json` (not committed)."
    )
    out += [
        "",
        f"**Load.** {others_sentence(run)}Load average (1/5/15 min) at start: {ls['loadavg']}; at end: "
        f"{le.get('loadavg')}. `uptime` at start: `{ls['uptime']}`; at end: `{le.get('uptime')}`.",
        "",
    ]
    if run["mode"] == "full":
        out += [
            "Runs per figure are given with each figure; those with fewer than five (seed design latency "
            "and throughput, the at-least-once latency breakdown, replay of 100,000 and 1,000,000 events, "
            "Spark's fixed cost) were cut so that `make bench` stays within 30 minutes on 2 cores.",
            "",
        ]
    if run["mode"] == "quick":
        out += [
            "**This is a `--quick` run**: fewer runs (1–3) and smaller inputs than the full run; "
            "its figures are a smoke test, not the full measurement.",
            "",
        ]
    out += [
        "## Machine",
        "",
        _table(
            ["", ""],
            [
                ["cores", f"{m['cores']} (usable: {m['affinity_cores']})"],
                ["CPU", m["cpu_model"]],
                ["memory", f"{m['memory_gb']} GB"],
                ["OS", m["os"]],
                ["Python", m["python"]],
                ["Java", m["java"]],
                ["Kafka broker", m["kafka_broker"]],
                ["packages", ", ".join(f"{k} {v}" for k, v in m["packages"].items())],
            ],
        ),
        "",
    ]
    out += [
        "## Headline",
        "",
        _table(
            ["figure", "kappaml: median (min–max, runs)", "baseline (same run)", "ratio", "goal", "met?"],
            headline(run),
        ),
        "",
    ]
    for name, title in made:
        out += [f"![{title}](plots/{name})", ""]
    out += ["## Settings and details", ""]
    ing = sec.get("ingest", {})
    if "settings" in ing:
        out.append(
            "- **Ingest**: `producer serve` (rate 0) → `producer ingest` into a fresh 4-partition raw topic, "
            f"{ing['settings']['rows']:,} synthetic rows per run, default transactions "
            "(≤ 10,000 rows / 0.5 s); rows/s from the ingest's own start-to-end; every run's committed "
            "count checked. Baseline: a raw HTTP client reading the same SSE stream with no Kafka."
        )
    proc = sec.get("processor", {})
    if "settings" in proc:
        out.append(
            f"- **Processor**: a backlog of {proc['settings']['messages']:,} synthetic records in a "
            "1-partition raw topic (one global model, spec `rls`), processed by the kappaml processor "
            "in-process (throughput from its first to last prediction's `processed_ts`, commit interval "
            "1 s), by the hand-written confluent-kafka loop (`bench/handwritten_loop.py`, transactional, "
            "checkpoint each second) and by River alone (decode + learn_step in memory). One partition "
            "is processed by one Python thread: msg/s here is msg/s per core."
        )
    lat = sec.get("latency", {})
    if "settings" in lat:
        s = lat["settings"]
        out.append(
            f"- **Latency**: `producer serve` → `producer ingest --rate {s['rate']} --commit-interval "
            f"{s['ingest_commit_interval_s']}` → system → predictions read by a read_committed consumer; "
            f"latency = time seen − the record's `ts` (stamped by the SSE server). kappaml processor runs "
            f"with `--commit-interval {s['processor_commit_interval_s']}` (exactly-once; also at-least-once "
            "as a breakdown); the seed job "
            "uses Spark's default trigger. Each run: "
            f"{s['warmup']:g} s warm-up (discarded) + {s['seconds']:g} s measured. "
            "Runs with errors: "
            + (
                ", ".join(
                    r["error"][:120]
                    for sys_ in ("kappaml", "seed")
                    for r in lat.get(f"{sys_}_runs", [])
                    if "error" in r
                )
                or "none"
            )
            + "."
        )
    seed = sec.get("seed", {})
    if "throughput" in seed:
        tr = seed["throughput_runs"][0]
        out.append(
            f"- **Seed design** (`bench/seed_job.py`): Spark Structured Streaming (local[2]) reading the "
            "raw topic, `foreachBatch` → pandas → `SGDRegressor.partial_fit` on unscaled features once per "
            "micro-batch, each batch predicted before it is learned. Throughput over a backlog of "
            f"{tr['rows']:,} records: {_mm(seed['throughput'])} msg/s (first batch start to last batch "
            f"end; {tr['batches']} micro-batch(es) since the seed sets no maxOffsetsPerTrigger; "
            f"wall time with Spark's start-up {tr['wall_s']} s)."
        )
        sp = seed.get("rmse_spark_file_order")
        mem = seed.get("rmse_in_memory")
        if mem:
            in_spark = (
                f"{_f(sp['rmse'], 0)} g/km in the Spark job (file order, {sp['batches']} micro-batches of "
                f"≤ 1,000 rows, {sp['fit_errors']} refused fits); "
                if sp
                else "not run in the Spark job in this mode; "
            )
            out.append(
                f"  Prequential RMSE on the CO2 data: {in_spark}"
                f"the same per-batch computation (batches of 1,000 rows) in memory over "
                f"{', '.join(mem['orders'])}: "
                f"{_mm(mem['rmse'], 0)} g/km (SGDRegressor's random_state is unset, as in the seed, "
                "so runs differ)."
            )
    rep = sec.get("replay", {})
    if rep.get("scenarios"):
        out.append(
            "- **Replay**: `python -m spark_batch replay --no-publish` "
            f"(spark-submit, {rep['settings']['master']}) "
            "vs a pure-Python sequential replay (`bench/bench_replay.py`), 2-partition raw topic, equal "
            f"fingerprints checked. Spark fixed cost (1 event): {_mm(rep['fixed_cost'], 1)} s."
        )
        rows = [
            [
                f"{s['events']:,}",
                f"{s['keys']:,}",
                _mm(s["python"], 2),
                _mm(s["spark"], 1),
                _ratio(s["spark"]["median"], s["python"]["median"]),
                _ratio(s["spark"]["median"], s["python"]["median"] + rep["fixed_cost"]["median"]),
            ]
            for s in rep["scenarios"]
        ]
        out += [
            "",
            _table(
                ["events", "keys", "pure Python s", "Spark s", "Spark / Python", "Spark / (Python + fixed)"],
                rows,
            ),
            "",
        ]
    mod = sec.get("models", {})
    if mod.get("specs"):
        out.append(
            f"- **Models**: prequential (predict, then learn) single pass over the {mod['rows']:,} rows of "
            "the "
            f"CO2 CSV in {', '.join(mod['orders'])}; RMSE over every row (the first is predicted as 0)."
        )
        rows = [
            [
                spec + (" (default)" if spec == mod["default"] else ""),
                _mm(s["rmse"], 2),
                _mm(s["rmse_without_first_row"], 2),
                _mm(s["us_per_row"], 1),
            ]
            for spec, s in mod["specs"].items()
        ]
        out += ["", _table(["spec", "RMSE g/km", "RMSE without row 1", "CPU µs/row"], rows), ""]
    mem = memory_rows(run)
    if mem:
        out += [
            "",
            "## Peak memory",
            "",
            "Summed RSS of each program's process tree, sampled every 0.5 s "
            "(shared pages counted per process; a short spike can be missed).",
            "",
            _table(["program", "peak RSS MB", "measured during"], mem),
            "",
        ]
    errors = [(name, s["error"]) for name, s in sec.items() if "error" in s]
    if errors:
        out += ["## Not measured in this run", ""] + [f"- **{n}**: `{e[:300]}`" for n, e in errors] + [""]
    prof = sec.get("profile", {})
    if prof.get("share"):
        out += [
            "## Where the processor's time goes",
            "",
            f"cProfile of one exactly-once processor run over {prof['messages']:,} backlog messages "
            f"({prof['consumer_poll_calls']:,} consumer polls: Quix Streams polls one message per call). "
            "Internal time by group; profiling slows Python code more than C calls, so shares are "
            "indicative.",
            "",
            _table(
                ["where", "seconds", "share"],
                [[k, f"{prof['by_group_s'][k]:.2f}", f"{v:.0%}"] for k, v in prof["share"].items()],
            ),
            "",
        ]
    for m in run.get("merged", []):
        out += [
            f"Section(s) {', '.join(m['sections'])} re-run on their own ({m['mode']} settings) at "
            f"{m['started'][:16].replace('T', ' ')} UTC and merged in; load then: "
            f"{m['load_start']['loadavg']} → {m['load_end']['loadavg']}.",
            "",
        ]
    out += ["## Durations", "", ", ".join(f"{n} {_f(s.get('seconds'))} s" for n, s in sec.items()), ""]
    return "\n".join(out)


def write(run: dict, path: Path) -> Path:
    """The report at ``path``, its plots in ``plots/`` beside it (linked relatively)."""
    made = plots(run, path.parent / "plots")
    path.write_text(render(run, made))
    return path
