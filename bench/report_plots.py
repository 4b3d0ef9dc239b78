"""The report's figures as small PNGs (matplotlib, the benchmark extra)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from bench.report_headline import memory_rows


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
