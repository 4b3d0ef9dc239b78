"""The prediction API under a real HTTP load generator (oha), while the pipeline runs.

    python -m bench.bench_api [--runs 3] [--seconds 8] [--rates 500,1000,2000]

A private broker, the synthetic data declared, a processor learning from a writer at 100 rows/s
(so it checkpoints and publishes snapshots all along), and ``python -m api``. For each rate,
``oha -q RATE`` posts one prediction per request with ``log=false`` and ``log=true``; the
baseline is ``GET /health`` at the same rate on the same server (the HTTP stack alone).
Freshness: a client polls /predict every 5 ms; the first answer from each new snapshot carries
``staleness_ms``, the time since the processor's checkpoint that made it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.harness import broker_or, summary
from infra.testing import PacedWriter, free_port, stop
from kappaml import synthetic
from kappaml.catalog import publish_declaration
from kappaml.records import parse_row
from kappaml.topics import Topics, ensure_topics

REPO = Path(__file__).resolve().parents[1]


def _rows(work: Path, n: int) -> list[dict]:
    import csv

    path = synthetic.write_csv(work / "rows.csv", n_rows=n, seed=5)
    with open(path, newline="") as fh:
        return [parse_row(synthetic.dataset(), f, i) for i, f in enumerate(csv.DictReader(fh), 1)]


def _oha(url: str, rate: int, seconds: float, body: str | None) -> dict[str, float]:
    argv = ["oha", "-z", f"{seconds}s", "-q", str(rate), "-c", "64", "--no-tui", "--output-format", "json"]
    if body is not None:
        argv += ["-m", "POST", "-T", "application/json", "-d", body]
    out = json.loads(subprocess.run([*argv, url], capture_output=True, text=True, check=True).stdout)
    pct = out["latencyPercentiles"]
    codes = out.get("statusCodeDistribution", {})
    return {"p50_ms": pct["p50"] * 1000, "p99_ms": pct["p99"] * 1000,
            "rps": out["summary"]["requestsPerSec"], "ok": codes.get("200", 0),
            "not_ok": sum(v for k, v in codes.items() if k != "200")}


def _freshness(base: str, x: dict, seconds: float) -> list[int]:
    seen: dict[int, int] = {}
    deadline = time.monotonic() + seconds
    with httpx.Client(timeout=5) as client:
        while time.monotonic() < deadline:
            answer = client.post(f"{base}/predict", params={"log": "false"}, json={"features": x}).json()
            if answer["offset"] >= 0 and answer["offset"] not in seen:
                seen[answer["offset"]] = answer["staleness_ms"]
            time.sleep(0.005)
    return list(seen.values())[1:]  # the first was already served when polling began


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.bench_api", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--rates", default="500,1000,2000")
    p.add_argument("--freshness-seconds", type=float, default=30.0)
    p.add_argument("--bootstrap", default=None)
    args = p.parse_args(argv)
    if shutil.which("oha") is None:
        sys.stderr.write("oha is not installed: cargo install oha\n")
        return 2
    rates = [int(r) for r in args.rates.split(",") if r.strip()]
    results: dict[str, object] = {"load_at_start": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with broker_or(args.bootstrap, work) as kafka:
            topics = Topics(prefix=f"bapi{int(time.time())}", raw_partitions=2)
            ensure_topics(kafka, topics.specs())
            dataset = synthetic.dataset()
            publish_declaration(kafka, topics.datasets, dataset)
            rows = _rows(work, 20_000)
            writer = PacedWriter(kafka, topics.raw, dataset, rows, rate=100)
            writer.start()
            common = ["--bootstrap", kafka.bootstrap_servers, "--topic-prefix", topics.prefix,
                      "--raw-partitions", "2", "--log-level", "WARNING"]
            processor = subprocess.Popen([sys.executable, "-m", "processor", *common, "--state-dir",
                                          str(work / "state"), "--commit-interval", "1.0"],
                                         cwd=REPO, start_new_session=True)
            port = free_port()
            api = subprocess.Popen([sys.executable, "-m", "api", *common, "--port", str(port),
                                    "--instance-id", "bench-api"], cwd=REPO, start_new_session=True)
            base = f"http://127.0.0.1:{port}"
            x = {f.name: rows[0][f.name] for f in dataset.features}
            body = json.dumps({"features": x})
            try:
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline:
                    try:
                        r = httpx.post(f"{base}/predict", params={"log": "false"}, json={"features": x})
                        if r.status_code == 200 and r.json()["offset"] >= 0:
                            break
                    except httpx.HTTPError:
                        pass
                    time.sleep(0.5)
                else:
                    raise RuntimeError("the API never served a snapshot")
                fresh = sorted(_freshness(base, x, args.freshness_seconds))
                n = len(fresh)
                results["freshness_ms"] = {"samples": n, "p50": fresh[n // 2] if n else None,
                                           "p99": fresh[min(n - 1, int(n * 0.99))] if n else None,
                                           "max": fresh[-1] if n else None}
                # Freshness first: the logged requests below are features events the processor
                # works through (before issue 17, as dead letters), which delays its checkpoints.
                figures: dict[str, dict[str, list[dict[str, float]]]] = {}
                for rate in rates:
                    for name, url, payload in (("health", f"{base}/health", None),
                                               ("log=false", f"{base}/predict?log=false", body),
                                               ("log=true", f"{base}/predict?log=true", body)):
                        runs = figures.setdefault(name, {}).setdefault(str(rate), [])
                        for _ in range(args.runs):
                            runs.append(_oha(url, rate, args.seconds, payload))
                            print(name, rate, runs[-1], flush=True)  # noqa: T201 - a bench's progress
                results["figures"] = {
                    name: {rate: {k: summary([r[k] for r in runs]) for k in runs[0]}
                           for rate, runs in by_rate.items()}
                    for name, by_rate in figures.items()}
            finally:
                writer.stop()
                stop(api)
                stop(processor)
    results["load_at_end"] = os.getloadavg()
    out = REPO / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "api.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
