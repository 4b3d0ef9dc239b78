"""The "Adapting by itself" section of bench/REPORT.md from bench/results/adapt.json (bench_adapt)."""

from __future__ import annotations

import re
import statistics
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
REPORT = REPO / "bench" / "REPORT.md"
HEADING = "## Adapting by itself"
DRIFT_GOAL, STILL_GOAL = 1.2, 1.02  # issue 19: x best single spec (drift), x manual (no drift)
AUTO_MODES = ("auto", "auto + background drift")


def _mm(values: list[float], fmt: str = "{:.3f}") -> str:
    if not values:
        return "–"
    if len(values) == 1:
        return fmt.format(values[0])
    median, lo, hi = (fmt.format(f(values)) for f in (statistics.median, min, max))
    return f"{median} ({lo}–{hi}, {len(values)})"


def _med(runs: list[dict], field: str) -> float:
    return statistics.median(r[field] for r in runs)


def goals(case: dict[str, Any]) -> dict[str, tuple[float, float, bool]]:
    """Per automatic mode: (served ÷ best single spec, served ÷ manual, goal met)."""
    runs = case["runs"]
    manual = runs["manual"][0]
    best = min(manual["spec_rmse"].values())
    out = {}
    for mode in AUTO_MODES:
        if runs.get(mode):
            served = statistics.median(r["served_rmse"] for r in runs[mode])
            vs_best, vs_manual = served / best, served / manual["served_rmse"]
            met = vs_manual <= STILL_GOAL if case["kind"] == "no drift" else vs_best <= DRIFT_GOAL
            out[mode] = (vs_best, vs_manual, met)
    return out


def _promotions(run: dict[str, Any]) -> str:
    def move(p: dict[str, Any]) -> str:
        landed = p.get("record_rows")
        record = f" (record after row {landed:,})" if landed is not None and landed != p["after_rows"] else ""
        if p.get("reason") == "takeover":
            pairs = p["decided"] or 0
            return f"takeover: new {p['spec']} after {pairs:,} pairs, at row {p['after_rows']:,}{record}"
        return f"{p['serving'] or '?'}→{p['spec']} at {p['decided'] or 0:,}/{p['after_rows']:,}{record}"

    moves = [move(p) for p in run["promotions"]]
    return "; ".join(moves) or "none"


def _gate(res: dict[str, Any]) -> str:
    gate = res.get("gate")  # absent from the results of runs before the restart at a detection
    if not gate:
        return ""
    restart = (f"; after a drift detection of the serving spec it starts afresh and looks at every "
               f"{gate['drift_every']}th scored row from {gate['drift_min_pairs']} pairs until its window "
               "is full" if gate.get("drift_every") else "")
    return (f" (window {gate['window']}, confidence {gate['confidence']}, margin {gate['margin']}, "
            f"min_pairs {gate['min_pairs']}, every {gate['every']}{restart})")


def _deterministic(runs: dict[str, list[dict]]) -> bool:
    return all(len({round(r["served_rmse"], 9) for r in rs}) <= 1 for rs in runs.values() if rs)


def render(res: dict[str, Any]) -> str:
    modes = [m for m in res["modes"] if m != "alone"]
    autos = [m for m in AUTO_MODES if m in modes]
    cases = res["scenarios"]
    load = res["cpu_others"]
    command = " ".join(["python -m bench.bench_adapt", *res["argv"]])
    challengers = ", ".join(f"`{c}`" for c in res["challengers"])
    lines = [
        f"{HEADING} (`python -m bench.bench_adapt`, run on its own, {res['started']})",
        "",
        f"`{command}`, {res['duration_s']:,.0f} s. **Load**: other processes used "
        f"{load['others_cores']:.2f} of the {res['machine']['cores']} cores on average during the run "
        f"({load['others_cpu_s']:,.0f} CPU-s in {load['wall_s']:,.0f} s, machine busy time from /proc/stat "
        "minus this bench's process tree, its broker included); load average "
        f"{res['load_start']['loadavg'][0]} at the start, {res['load_end']['loadavg'][0]} at the end. "
        f"Rows written live at {res['rate']:g} rows/s (bench/paced_feed.py, its own process) to the real "
        "processor (in the bench's process), exactly-once, one partition, one global model, "
        f"`{res['serving']}` serving, challengers {challengers} (`--promotion auto`'s default set), the "
        f"gate's defaults{_gate(res)}, ADWIN. `manual` runs the same challengers, so its run gives every "
        "spec's RMSE "
        "(a challenger learns exactly what a run of its spec alone would): the best single spec in "
        "hindsight. Raw numbers: `bench/results/adapt.json`; `--render-only` rewrites this section "
        "from them.",
        "",
    ]
    if "note" in res:
        lines += [f"Not measured: `auto + background drift`: {res['note']} (it lights up once the processor "
                  "offers it).", ""]
    for failed in res.get("failed_runs", []):
        lines += [f"A run failed and was run again: {failed}.", ""]
    for message in res.get("skipped", []):
        lines += [f"Skipped: {message}.", ""]
    head = " | ".join(f"{m} RMSE" for m in modes)
    ratio_head = " | ".join(f"{m} ÷ best | {m} ÷ manual" for m in autos)
    lines += [
        "**Served prequential RMSE** (g/km; every row, the first included) and the goals: on a drift "
        f"scenario ≤ {DRIFT_GOAL}× the best single spec, without drift ≤ {STILL_GOAL}× manual.",
        "",
        f"| scenario | rows | kind | {head} | every spec (best **bold**) | {ratio_head} | goal met? | "
        "promotions, first run of each automatic mode (serving→spec at: decided after row / serves after "
        "row, and where its control record landed when later; takeover: a background model of the spec "
        "took over, after so many paired rows, serving after that row) |",
        "|" + "---|" * (6 + len(modes) + 2 * len(autos)),
    ]
    for case in cases:
        runs = case["runs"]
        specs = runs["manual"][0]["spec_rmse"]
        best = min(specs, key=specs.__getitem__)
        every = ", ".join((f"**{s} {v:.2f}**" if s == best else f"{s} {v:.2f}") for s, v in specs.items())
        ratios = goals(case)
        cells = " | ".join(_mm([r["served_rmse"] for r in runs[m]], "{:.2f}") for m in modes)
        rcells = " | ".join(f"{ratios[m][0]:.3f} | {ratios[m][1]:.3f}" for m in autos)
        met = ", ".join(f"{m}: {'**met**' if ratios[m][2] else '**missed**'}" for m in autos)
        lines.append(f"| {case['name']} | {case['rows']:,} | {case['kind']} | {cells} | {every} | {rcells} "
                     f"| {met} | {'; '.join(f'{m}: {_promotions(runs[m][0])}' for m in autos)} |")
    all_met = all(g[2] for c in cases for g in goals(c).values())
    verdict = "met on every scenario" if all_met else "not met on every scenario (see the table)"
    lines += ["", f"Goals: {verdict}."]
    if any(len(rs) > 1 for c in cases for rs in c["runs"].values()):
        same = all(_deterministic(c["runs"]) for c in cases)
        lines[-1] += (" Runs of a mode on one scenario gave the same served RMSE every time: "
                      f"{'yes' if same else 'no (where the switch lands depends on timing)'}.")
    lines.append("")
    lines += _cost(res)
    return "\n".join(lines).rstrip() + "\n"


def _cost(res: dict[str, Any]) -> list[str]:
    cost = res.get("cost")
    if not cost or not cost["rounds"]:
        return []
    rounds = cost["rounds"]
    specs = [res["serving"], *res["challengers"]]

    def cpu(mode: str) -> list[float]:
        return [r[mode]["cpu_us_per_msg"] for r in rounds]

    ratio = [r["auto"]["cpu_us_per_msg"] / r["manual"]["cpu_us_per_msg"] for r in rounds]
    extra = [r["auto"]["cpu_us_per_msg"] - r["alone"]["cpu_us_per_msg"] for r in rounds]
    others = [r[m]["others_cores"] for r in rounds for m in r]
    steps = ", ".join(f"`{s}` {_mm([r['manual']['learn_us'][s] or 0 for r in rounds], '{:,.0f}')}"
                      for s in specs)
    return [
        f"**Cost per message** ({len(rounds)} rounds of `alone` (`rls` without challengers, manual: today's "
        f"default), `manual` and `auto` (the default challengers), order alternating, each over a backlog of "
        f"{cost['rows']:,} synthetic rows written before the processor starts; CPU of the processor's "
        "process from its first to its last message, i.e. Quix, the models, the outputs and librdkafka's "
        f"threads; others used {min(others):.2f}–{max(others):.2f} cores during these runs). µs per "
        "message, median (min–max, runs):",
        "",
        "| alone | manual | auto | auto ÷ manual (same round) | auto − alone | the gate's own calls |",
        "|---|---|---|---|---|---|",
        f"| {_mm(cpu('alone'), '{:,.0f}')} | {_mm(cpu('manual'), '{:,.0f}')} | {_mm(cpu('auto'), '{:,.0f}')} "
        f"| {_mm(ratio)} | {_mm(extra, '{:,.0f}')} "
        f"| {_mm([r['auto']['gate_us_per_msg'] for r in rounds], '{:.1f}')} |",
        "",
        f"Each spec's predict-then-learn step in the `manual` runs (`learn_us`, as the processor times it, "
        f"µs): {steps}.",
    ]


def write_report(section: str, path: Path = REPORT) -> None:
    """Put ``section`` in place of the report's "Adapting by itself" section, or append it."""
    text = path.read_text() if path.exists() else ""
    pattern = re.compile(rf"^{re.escape(HEADING)}\b.*?(?=^## |\Z)", re.M | re.S)
    text = (pattern.sub(lambda _m: section + "\n", text) if pattern.search(text)
            else text.rstrip() + "\n\n" + section)
    path.write_text(text)
