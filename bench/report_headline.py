"""The report's headline table (every goal judged from the medians) and its memory rows."""

from __future__ import annotations

from bench.report_format import median_of, met, num, ratio, runs_of
from bench.report_metrics import metrics_headline


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
                runs_of(k),
                f"SSE stream alone {num(median_of(b))}",
                ratio(median_of(k), median_of(b)),
                "≥ 50,000 rows/s",
                met(median_of(k) >= 50_000),
            ]
        )
    proc = sec.get("processor", {}).get("variants")
    if proc:
        loop = median_of(proc["hand-written loop"])
        river = median_of(proc["River alone"])
        floor = proc.get("Quix Streams alone")
        quix = f"; Quix Streams alone {num(median_of(floor))}" if floor else ""
        for g in ("exactly-once", "at-least-once"):
            s = proc[f"kappaml {g}"]
            ok = None
            goal = "–"
            if g == "exactly-once":
                ok = median_of(s) >= 25_000 and median_of(s) >= 0.7 * loop
                goal = "≥ 25,000 msg/s per core and ≥ 70% of the loop"
            rows.append(
                [
                    f"processor msg/s, {g} (one partition, one core)",
                    runs_of(s),
                    f"hand-written loop {num(loop)}; River alone {num(river)}{quix}",
                    f"{ratio(median_of(s), loop)} loop; {ratio(median_of(s), river)} River",
                    goal,
                    met(ok),
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
                ok = median_of(k) <= 50 and (b is None or median_of(k) < median_of(b))
            rows.append(
                [
                    f"latency {q[:3]} ms at {lat['settings']['rate']:,} msg/s (exactly-once)",
                    runs_of(k),
                    f"seed design {runs_of(b) if b else 'not measured'}",
                    ratio(median_of(k), median_of(b)),
                    goal,
                    met(ok),
                ]
            )
        alo = lat.get("kappaml_alo") or {}
        if alo:
            rows.append(
                [
                    "latency p50 / p99 ms, processor at-least-once (where the time goes)",
                    f"{runs_of(alo['p50_ms'])} / {runs_of(alo['p99_ms'])}",
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
                    f"{runs_of(k['raw_visible_p50_ms'])} / {runs_of(k['raw_visible_p99_ms'])}",
                    "–",
                    "–",
                    "–",
                    "–",
                ]
            )
    rep = sec.get("replay", {})
    fixed = median_of(rep.get("fixed_cost"))
    for s in rep.get("scenarios", []):
        py, sp = median_of(s["python"]), median_of(s["spark"])
        if s["keys"] == 1:
            budget = 1.5 * py + fixed
            rows.append(
                [
                    f"replay s, {s['events']:,} events, 1 key",
                    f"Spark {runs_of(s['spark'], 1)}",
                    f"pure Python {num(py, 1)} + Spark fixed cost {num(fixed, 1)}",
                    f"{ratio(sp, py + fixed)} (Python + fixed)",
                    "≤ 1.5 × Python + start-up",
                    met(sp <= budget),
                ]
            )
        else:
            rows.append(
                [
                    f"replay s, {s['events']:,} events, {s['keys']:,} keys",
                    f"Spark {runs_of(s['spark'], 1)}",
                    f"pure Python {num(py, 1)}",
                    ratio(sp, py),
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
                runs_of(mod[d]["rmse"], 2),
                f"seed SGDRegressor per micro-batch {runs_of(seed_rmse, 0) if seed_rmse else 'not measured'}",
                ratio(median_of(mod[d]["rmse"]), median_of(seed_rmse)),
                "≤ 5.0 g/km",
                met(median_of(mod[d]["rmse"]) <= 5.0),
            ]
        )
    rows += metrics_headline(sec)
    return rows



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
                rows.append([name, num(max(vals)), "latency run at 1,000 msg/s"])
    if sec.get("ingest", {}).get("server_peak_rss_mb"):
        rows.append(["sse-server", num(sec["ingest"]["server_peak_rss_mb"]),
                     "ingest throughput run (rate 0)"])
    if sec.get("replay", {}).get("spark_peak_rss_mb"):
        rows.append(
            [
                "Spark replay (spark-submit: JVM + Python driver + workers)",
                num(sec["replay"]["spark_peak_rss_mb"]),
                "replay runs (peak over all scenarios)",
            ]
        )
    seed_runs = sec.get("seed", {}).get("throughput_runs", [])
    if seed_runs:
        rows.append(
            [
                "seed design Spark job",
                num(max(r["peak_rss_mb"] for r in seed_runs)),
                "throughput run over the backlog",
            ]
        )
    return rows
