"""The report's section on what Prometheus metrics cost the processor (bench/bench_metrics.py)."""

from __future__ import annotations

from typing import Any

__all__ = ["metrics_headline", "metrics_section"]

GOAL = 0.03  # metrics on may cost the processor at most 3 % of its throughput


def metrics_section(sec: dict[str, Any]) -> list[str]:
    m = sec.get("metrics", {})
    if "ratio" not in m:
        return []
    s, r, c, hp = m["settings"], m["ratio"], m["cpu_ratio"], m["hot_path"]
    loads = [run["loadavg_before"][0] for run in m["runs"]] + [run["loadavg_after"][0] for run in m["runs"]]
    per_message_ns = hp["learned_counter_ns"] + max(hp["histogram_ns"], 0.0) + hp["latency_fold_ns"]
    base_us = m["cpu_us_off"]["median"]
    scrape_ms = m["scrape_cpu_ms"]["median"]
    scrape_share = scrape_ms / 1e3 / 15  # CPU share of one scrape every 15 s (Prometheus' default)
    estimate = per_message_ns / 1e3 / base_us + scrape_share
    rows = [
        ["metrics off, msg/s", _mm(m["off"])],
        ["metrics on (scraped every 1 s), msg/s", _mm(m["on"])],
        ["**throughput on / off, per pair**", _ratio(r)],
        ["processing thread CPU per message, off / on, µs",
         f"{_mm(m['cpu_us_off'], 1)} / {_mm(m['cpu_us_on'], 1)}"],
        ["**CPU per message on / off, per pair**", _ratio(c)],
        ["hot path, per message: learned counter (always on)", f"{hp['learned_counter_ns']:.0f} ns"],
        ["hot path, per learn step: histogram in place of LearnCost's sums", f"{hp['histogram_ns']:.0f} ns"],
        ["per message, at the checkpoint: latency folded into the histogram",
         f"{hp['latency_fold_ns']:.0f} ns"],
        ["one scrape (collect + text), CPU", f"{scrape_ms:.2f} ms"],
        ["estimate: per-message ns over the off CPU per message, plus a scrape every 15 s",
         f"{estimate:.2%}"],
    ]
    return [
        "## Prometheus metrics: processor throughput on vs off",
        "",
        f"Exactly-once processor, {s['messages']:,} synthetic records per run on a fresh 1-partition raw "
        f"topic (one key, spec `rls`); {s['pairs']} pairs in this same run, metrics off and on, the first "
        "of each pair alternating, after one discarded warm-up run; \"on\" serves `/metrics` and a "
        f"scraper reads it every {s['scrape_interval_s']:g} s (Prometheus' default is 15 s). Throughput as "
        "in the processor section (first to last prediction); CPU is the processing thread's, from its "
        "first to its last busy checkpoint. Goal: a cost under "
        f"{GOAL:.0%}. The 1-minute load average ranged {min(loads)}–{max(loads)} during these runs: "
        "single pairs swing by far more than 3 % either way, so the medians and the hot-path figures "
        "(timed without Kafka, best of 7 alternating rounds) "
        "carry the answer.",
        "",
        "| figure | value |",
        "|---|---|",
        *[f"| {a} | {b} |" for a, b in rows],
        "",
    ]


def metrics_headline(sec: dict[str, Any]) -> list[list[str]]:
    """The headline row: processor CPU per message with metrics on over off (the steadier figure)."""
    m = sec.get("metrics", {})
    if "cpu_ratio" not in m:
        return []
    c = m["cpu_ratio"]
    return [["processor CPU per message, Prometheus metrics on / off (exactly-once)",
             f"{c['median']:.3f} ({c['min']:.3f}–{c['max']:.3f}, {c['runs']} pairs)", "metrics off, same run",
             f"{c['median']:.2f}×", f"cost < {GOAL:.0%}",
             ("**met** (median; single pairs swing with the load)" if c["median"] <= 1 + GOAL
              else "**missed**")]]


def _ratio(s: dict[str, float]) -> str:
    return f"{s['median']:.3f} ({s['min']:.3f}–{s['max']:.3f}, {s['runs']} pairs)"


def _mm(s: dict[str, float], digits: int = 0) -> str:
    return f"{s['median']:,.{digits}f} ({s['min']:,.{digits}f}–{s['max']:,.{digits}f}, {s['runs']} runs)"
