"""Microbenchmark of ``kappaml.records``: µs per record to decode and to extract raw-topic values.

    python -m bench.bench_records [--csv ../shared/data/co2_processed.csv] [--dataset co2]
                                  [--repeats 15] [--copies 4]

The CSV's rows are typed with ``parse_row`` and wrapped with ``make_record`` / ``encode_record``
exactly as the producer writes them (``--copies`` passes over the file, so one timed pass is
long enough to time well). Each repeat times, over every record: ``decode`` (bytes ->
``Example``: the processor's and replay's per-message cost) and ``extract`` alone (an already
parsed JSON object -> ``Example``). The figure is the median over the repeats with its min and
max: the machine is shared, and the median is the least disturbed. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from kappaml.dataset import Dataset, load
from kappaml.records import decode, encode_record, extract, make_record, parse_row

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CSV = REPO.parent / "shared" / "data" / "co2_processed.csv"


def encoded_records(path: Path, dataset: Dataset, copies: int = 1) -> list[bytes]:
    """Raw-topic values of every row of ``path``, ``copies`` times (ids keep counting)."""
    with path.open(newline="") as fh:
        rows = [parse_row(dataset, fields, row=i) for i, fields in enumerate(csv.DictReader(fh), start=1)]
    ts = 1_700_000_000_000
    return [
        encode_record(make_record(dataset, c * len(rows) + i, row, ts + i))
        for c in range(copies)
        for i, row in enumerate(rows, start=1)
    ]


def _per_record_us(fn: Any, dataset: Dataset, items: list[Any]) -> float:
    started = time.perf_counter()
    for item in items:
        fn(dataset, item)
    return (time.perf_counter() - started) / len(items) * 1e6


def measure(
    dataset: Dataset, values: list[bytes], repeats: int, functions: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Median (min-max) µs per record of each function over ``values`` (default: decode, extract).

    ``functions`` maps a name to ``(fn, takes_bytes)``: other implementations can be timed
    beside these in the same run.
    """
    functions = functions or {"decode": (decode, True), "extract": (extract, False)}
    parsed = [orjson.loads(v) for v in values]
    timings: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(repeats):
        # Interleaved, so a burst of load from elsewhere hits every function alike.
        for name, (fn, takes_bytes) in functions.items():
            timings[name].append(_per_record_us(fn, dataset, values if takes_bytes else parsed))
    return {
        name: {"median_us": round(statistics.median(t), 3), "min_us": round(min(t), 3),
               "max_us": round(max(t), 3), "repeats": len(t)}
        for name, t in timings.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    parser.add_argument("--dataset", default="co2", help="built-in name or .toml declaration of the CSV")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--copies", type=int, default=4, help="passes over the CSV per timed repeat")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.copies < 1:
        parser.error("--repeats and --copies must be >= 1")
    if not args.csv.exists():
        parser.error(f"{args.csv} does not exist")
    dataset = load(args.dataset)
    values = encoded_records(args.csv, dataset, args.copies)
    result = {"csv": str(args.csv), "dataset": dataset.name, "records": len(values),
              **measure(dataset, values, args.repeats)}
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
