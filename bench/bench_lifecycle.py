"""What drift detection and a challenger cost the processor (issue 9), measured in one run.

    python -m bench.bench_lifecycle [--messages 50000] [--runs 3] [--challenger linear]

On one backlog of synthetic CO2 records (one partition, one global model), exactly-once:

- ``champion, no drift``: the processor with ``--drift none``;
- ``champion``: the default, ADWIN on the champion's absolute error;
- ``champion + challenger``: ``--challengers <spec>``, drift on both;
- ``challenger alone``: the challenger's spec as the only model;
- in memory, no Kafka: the challenger's own cost per message (decode excluded: the processor
  decodes once for all specs), i.e. ``learn_step`` with its drift monitor.

The goal: with one challenger, the throughput drops by no more than the challenger's own model
cost, i.e. ``1 / rate(champion + challenger) - 1 / rate(champion) <= cost(challenger)`` per
message. The processor also times each spec's step itself (``learn_us`` in its comparison
records): the extra beyond the challenger's step timed in the same run is what running it
costs on top of its model (its prediction records, mostly). Writes bench/results/lifecycle.json
and prints a table (medians over runs).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench.bench_processor import _backlog, _free
from infra.broker import BrokerConfig, LocalBroker
from infra.testing import read_all, typed_rows
from kappaml import synthetic
from kappaml.dataset import builtin
from kappaml.drift import DriftConfig
from kappaml.kafka import KafkaSettings
from kappaml.learner import KeyState, learn_step
from kappaml.logging import configure_logging
from kappaml.models import DEFAULT_SPEC
from kappaml.records import Prediction, decode
from processor import Processor, ProcessorSettings

RESULTS = Path(__file__).resolve().parent / "results"


def processor_run(kafka: KafkaSettings, rows: list[dict], state: Path,
                  **kw: object) -> tuple[float, Processor]:
    """(messages per second, the processor that ran: its ``learn_cost`` per spec)."""
    topics = _backlog(kafka, rows)
    kw.setdefault("model_spec", DEFAULT_SPEC)
    settings = ProcessorSettings(dataset=builtin("co2"), kafka=kafka, topics=topics, state_dir=state,
                                 consumer_group=f"bench-{uuid.uuid4().hex[:8]}", **kw)  # type: ignore[arg-type]
    processor = Processor(settings)
    processor.run(idle_timeout=3)
    stamps = sorted(Prediction.decode(v).processed_ts for _k, v, _p, _o in
                    read_all(kafka, topics.predictions, expect=len(rows), timeout=120))
    return len(stamps) / max((stamps[-1] - stamps[0]) / 1000, 1e-3), processor


def processor_rate(kafka: KafkaSettings, rows: list[dict], state: Path, **kw: object) -> float:
    return processor_run(kafka, rows, state, **kw)[0]


def model_cost_s(values: list[bytes], spec: str) -> float:
    """Seconds per message of one more spec: learn_step with its drift monitor, decode excluded."""
    dataset = builtin("co2")
    examples = [decode(dataset, v) for v in values]
    ks = KeyState.new("__all__", dataset, spec, "bench", drift=DriftConfig())
    start = time.perf_counter()
    for offset, example in enumerate(examples):
        learn_step(ks, example, offset)
    return (time.perf_counter() - start) / len(examples)


def one_run(kafka: KafkaSettings, rows: list[dict], tmp: Path, challenger: str) -> dict[str, float]:
    both, pair = processor_run(kafka, rows, tmp / "c", challengers=(challenger,))
    rates = {
        "champion, no drift": processor_rate(kafka, rows, tmp / "a", drift=None),
        "champion": processor_rate(kafka, rows, tmp / "b"),
        "champion + challenger": both,
        # For scale: the challenger's spec as the only model, i.e. its cost inside the pipeline.
        "challenger alone": processor_rate(kafka, rows, tmp / "d", model_spec=challenger),
    }
    topics = _backlog(kafka, rows[:20_000])
    values = [v for _k, v, _p, _o in read_all(kafka, topics.raw, expect=min(len(rows), 20_000))]
    return {**rates, "challenger cost us/msg": model_cost_s(values, challenger) * 1e6,
            # The same step timed inside the champion + challenger run, for each spec.
            "challenger cost in pipeline us/msg": pair.learn_cost.micros(challenger) or 0.0,
            "champion cost in pipeline us/msg": pair.learn_cost.micros(DEFAULT_SPEC) or 0.0}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--challenger", default="linear")
    args = parser.parse_args(argv)
    configure_logging("WARNING")
    with tempfile.TemporaryDirectory(prefix="kappaml-bench-") as tmpdir:
        tmp = Path(tmpdir)
        broker = LocalBroker(BrokerConfig(port=_free(), controller_port=_free(), data_dir=tmp / "kafka",
                                          heap="1g", log_level="WARN"))
        broker.start()
        try:
            kafka = KafkaSettings(bootstrap_servers=broker.config.bootstrap)
            csv_path = synthetic.write_csv(tmp / "rows.csv", args.messages, seed=1)
            rows = typed_rows(synthetic.dataset(), csv_path)
            runs = [one_run(kafka, rows, tmp / f"run{i}", args.challenger) for i in range(args.runs)]
        finally:
            broker.stop()
    median = {name: statistics.median(r[name] for r in runs) for name in runs[0]}
    extra_us = (1 / median["champion + challenger"] - 1 / median["champion"]) * 1e6
    drift_us = (1 / median["champion"] - 1 / median["champion, no drift"]) * 1e6
    result = {"messages": args.messages, "challenger": args.challenger, "runs": runs, "median": median,
              "challenger_extra_us_per_msg": extra_us, "drift_extra_us_per_msg": drift_us,
              "goal_met": extra_us <= median["challenger cost us/msg"],
              # What a challenger costs beyond its own learning step, timed in the same run.
              "overhead_beyond_model_us_per_msg": extra_us - median["challenger cost in pipeline us/msg"]}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "lifecycle.json").write_text(json.dumps(result, indent=2))
    lines = [f"{name:<28} {value:>10,.1f}" for name, value in median.items()]
    lines += [f"{'extra per msg with challenger':<28} {extra_us:>10,.1f} us "
              f"(its own cost {median['challenger cost us/msg']:.1f} us; goal met: {result['goal_met']})",
              f"{'  beyond its step in the run':<28} {result['overhead_beyond_model_us_per_msg']:>10,.1f} us "
              f"(its step timed in the pipeline: {median['challenger cost in pipeline us/msg']:.1f} us)",
              f"{'extra per msg for drift':<28} {drift_us:>10,.1f} us"]
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
