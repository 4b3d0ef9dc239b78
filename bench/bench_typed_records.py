"""Microbenchmark of the typed prediction record on the processor's hot path.

    python -m bench.bench_typed_records [--records 200000] [--runs 5]

Per run, over the same ``--records`` (example, result) pairs, in the same process, interleaved:

* ``dict``: the prediction built as the processor built it before the typed records (a dict
  literal, kept here as the baseline) and ``orjson.dumps``;
* ``typed``: ``processor.outputs.prediction`` (a ``kappaml.records.Prediction``) and ``encode()``;
* ``decode``: ``orjson.loads`` of the bytes vs ``Prediction.decode`` (what a reader pays).

Prints one JSON line: µs per record of each path per run, and the ratio typed / dict (and
decode typed / plain) per run, with min and max.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

import orjson

from kappaml.learner import KeyState, StepResult
from kappaml.records import Example, Prediction
from processor.outputs import prediction


def _baseline(ks: Any, example: Example, result: StepResult, partition: int, offset: int,
              processed_ms: int, role: str) -> bytes:
    """The processor's prediction record before kappaml.records.Prediction, verbatim."""
    record = {
        "key": ks.key, "id": example.id, "y_true": result.y_true, "y_pred": result.y_pred,
        "error": result.error, "version": ks.version, "spec": ks.spec, "partition": partition,
        "offset": offset, "event_ts": example.ts, "processed_ts": processed_ms, "role": role,
        "generation": result.generation,
    }
    if example.pass_no > 1:
        record["pass"] = example.pass_no
    return orjson.dumps(record)


def _typed(ks: Any, example: Example, result: StepResult, partition: int, offset: int,
           processed_ms: int, role: str) -> bytes:
    return prediction(ks, example, result, partition, offset, processed_ms, role).encode()


def _time(fn: Callable[[], None], n: int) -> float:
    started = time.perf_counter()
    fn()
    return (time.perf_counter() - started) / n * 1e6


def run(records: int, runs: int) -> dict[str, Any]:
    ks = KeyState(key="__all__", spec="rls", version="v1", model=None)
    examples = [Example(id=i, key="__all__", x={}, y=250.0 + i % 7, ts=1_700_000_000_000 + i)
                for i in range(records)]
    results = [StepResult(y_true=e.y, y_pred=e.y - 0.5) for e in examples]
    pairs = list(zip(examples, results, strict=True))
    encoded = [_baseline(ks, e, r, 0, i, 1, "champion") for i, (e, r) in enumerate(pairs)]
    assert [orjson.loads(b) for b in encoded] == [
        {k: v for k, v in orjson.loads(_typed(ks, e, r, 0, i, 1, "champion")).items() if k != "v"}
        for i, (e, r) in enumerate(pairs)]

    def build(fn: Callable[..., bytes]) -> Callable[[], None]:
        def loop() -> None:  # nothing kept, as in the processor (a kept list would time the GC)
            for i, (e, r) in enumerate(pairs):
                fn(ks, e, r, 0, i, 1, "champion")
        return loop

    def decode_all(fn: Callable[[bytes], object]) -> Callable[[], None]:
        def loop() -> None:
            for b in encoded:
                fn(b)
        return loop

    figures: dict[str, list[float]] = {"dict_us": [], "typed_us": [], "loads_us": [], "decode_us": []}
    for _ in range(runs):
        figures["dict_us"].append(_time(build(_baseline), records))
        figures["typed_us"].append(_time(build(_typed), records))
        figures["loads_us"].append(_time(decode_all(orjson.loads), records))
        figures["decode_us"].append(_time(decode_all(Prediction.decode), records))
    build_ratio = [t / d for t, d in zip(figures["typed_us"], figures["dict_us"], strict=True)]
    decode_ratio = [t / d for t, d in zip(figures["decode_us"], figures["loads_us"], strict=True)]
    added = [t - d for t, d in zip(figures["typed_us"], figures["dict_us"], strict=True)]
    return {
        "records": records, "runs": runs,
        **{k: [round(v, 3) for v in vs] for k, vs in figures.items()},
        "build_ratio_min_max": [round(min(build_ratio), 2), round(max(build_ratio), 2)],
        "build_added_us_min_max": [round(min(added), 3), round(max(added), 3)],
        "decode_ratio_min_max": [round(min(decode_ratio), 2), round(max(decode_ratio), 2)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(json.dumps(run(args.records, args.runs)))  # noqa: T201 - a bench's output


if __name__ == "__main__":
    main()
