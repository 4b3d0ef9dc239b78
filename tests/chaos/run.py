"""``make chaos`` / ``python -m tests.chaos.run``: the long fault-injection run and its accounting table.

Real CO2 data when ``../shared/data/co2_processed.csv`` exists (else 6,000 synthetic rows), plus its
corrupted copy; each program SIGKILLed several times, the broker restarted, the SSE connection
dropped, on a seeded schedule. Exit code 0 only when nothing is lost or duplicated and the live
models' fingerprints equal an undisturbed run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from kappaml.logging import configure_logging
from tests.chaos.harness import ChaosConfig, run

CO2_CSV = Path(__file__).resolve().parents[3] / "shared" / "data" / "co2_processed.csv"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.chaos.run", description=__doc__)
    p.add_argument("--csv", type=Path, default=CO2_CSV if CO2_CSV.exists() else None)
    p.add_argument("--rows", type=int, default=6000, help="synthetic rows when there is no CSV")
    p.add_argument("--seed", type=int, default=2024)
    p.add_argument("--rate", type=float, default=200.0, help="rows/s replayed by the SSE server")
    p.add_argument("--kills", type=int, default=4, help="SIGKILLs of each program")
    p.add_argument("--broker-restarts", type=int, default=1)
    p.add_argument("--sse-drops", type=int, default=3)
    p.add_argument("--workdir", type=Path, default=None, help="keep logs and data here")
    args = p.parse_args(argv)
    configure_logging("WARNING", json=False)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="kappaml-chaos-"))
    config = ChaosConfig(workdir=workdir, csv=args.csv, rows=args.rows, seed=args.seed, rate=args.rate,
                         kills={"processor": args.kills, "ingest": args.kills,
                                "serve": max(1, args.kills // 2)},
                         broker_restarts=args.broker_restarts, sse_drops=args.sse_drops, timeout=900)
    out = sys.stdout
    out.write(f"chaos run: data {args.csv or f'synthetic {args.rows} rows'} + corrupted copy, "
              f"seed {args.seed}, work dir {workdir}\n")
    report = run(config, on_event=lambda m: (out.write(m + "\n"), out.flush()))
    out.write(report.table() + "\n")
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
