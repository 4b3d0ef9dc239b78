"""The fault-injection run: the whole pipeline on clean + corrupted data while programs are
SIGKILLed, the broker restarts and the SSE connection drops, then an exact accounting.

The harness is the supervisor a real deployment would have: it restarts a program that died
(killed, or exited on its own, which it records as an *unexpected exit*).
"""

from __future__ import annotations

import json
import random
import re
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.broker import BrokerConfig, LocalBroker
from infra.testing import free_port, kill, read_all, start, wait_http
from kappaml import synthetic
from kappaml.dataset import Dataset, builtin
from kappaml.fingerprint import fingerprint
from kappaml.kafka import KafkaSettings
from kappaml.learner import KeyState, learn_step
from kappaml.logging import get_logger
from kappaml.models import DEFAULT_SPEC
from kappaml.records import InvalidRecord, decode
from kappaml.snapshot import Snapshot
from kappaml.topics import Topics, ensure_topics
from tests.chaos.corrupt import write_with_corrupted_copy
from tests.chaos.proxy import DroppingProxy

log = get_logger("chaos")
_POSITION = re.compile(r" at byte \d+")


@dataclass(frozen=True)
class ChaosConfig:
    workdir: Path
    csv: Path | None = None          # None: the synthetic CO2 data with ``rows`` rows
    rows: int = 2000
    seed: int = 7
    rate: float = 150.0              # rows/s the SSE server replays
    kills: dict[str, int] = field(default_factory=lambda: {"processor": 2, "ingest": 2, "serve": 1})
    broker_restarts: int = 1
    sse_drops: int = 1
    timeout: float = 300.0

    def __post_init__(self) -> None:
        if self.rate <= 0:
            raise ValueError("rate must be > 0: faults must land while the stream flows")
        if set(self.kills) - {"processor", "ingest", "serve"}:
            raise ValueError(f"unknown programs in kills: {sorted(self.kills)}")


class Supervised:
    """One program, restarted whenever it is found dead (unless it finished with exit code 0)."""

    def __init__(self, name: str, module: str, args: list[str], log_file: Path, may_finish: bool) -> None:
        self.name, self.module, self.args, self.log_file = name, module, args, log_file
        self.may_finish = may_finish
        self.proc: subprocess.Popen[bytes] | None = None
        self.finished = False
        self.kills = 0
        self.unexpected: list[int] = []
        self.starts = 0
        self.max_unexpected = 3
        self.restart_at: float | None = None  # a killed program kept down until then

    def start(self) -> None:
        self.proc = start(self.module, self.args, self.log_file)
        self.starts += 1

    def supervise(self) -> None:
        if self.restart_at is not None:
            if time.monotonic() >= self.restart_at:
                self.restart_at = None
                self.start()
            return
        if self.finished or self.proc is None or self.proc.poll() is None:
            return
        rc = self.proc.returncode
        if rc == 0 and self.may_finish:
            self.finished = True
            return
        self.unexpected.append(rc)
        if len(self.unexpected) > self.max_unexpected:
            raise RuntimeError(f"{self.name} keeps exiting on its own (codes {self.unexpected}); "
                               f"see {self.log_file}")
        log.warning("program exited on its own; restarting it", program=self.name, code=rc)
        self.start()

    def sigkill(self, down_for: float = 0.0) -> None:
        """SIGKILL it; restart it at once, or after ``down_for`` seconds (its partitions move meanwhile)."""
        if self.proc is None or self.finished:
            return
        kill(self.proc, signal.SIGKILL)
        self.kills += 1
        if down_for > 0:
            self.restart_at = time.monotonic() + down_for
        else:
            self.start()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            kill(self.proc, signal.SIGTERM, timeout=30)


def schedule(config: ChaosConfig, duration: float) -> list[tuple[float, str]]:
    """Seeded fault times over the stream's expected duration (first 10% left alone)."""
    rng = random.Random(config.seed)
    actions = [f"kill {name}" for name, n in config.kills.items() for _ in range(n)]
    actions += ["restart broker"] * config.broker_restarts + ["drop sse"] * config.sse_drops
    return sorted((rng.uniform(0.1, 0.85) * duration, a) for a in actions)


def reference(kafka: KafkaSettings, raw: list[Any],
              dataset: Dataset | None = None) -> tuple[dict[str, KeyState], set[str]]:
    """An undisturbed in-process run over the final raw topic, in offset order per partition."""
    dataset = dataset or builtin("co2")
    states: dict[str, KeyState] = {}
    learnable: set[str] = set()
    for key, value, _p, offset in sorted(raw, key=lambda m: (m[2], m[3])):
        try:
            example = decode(dataset, value)
        except InvalidRecord:
            continue
        if key is None or example.key != key.decode():
            continue
        ks = states.setdefault(example.key, KeyState.new(example.key, dataset, DEFAULT_SPEC, "v1"))
        if learn_step(ks, example, offset) is not None:
            learnable.add(str(example.id))
    return states, learnable


@dataclass
class Report:
    rows_in: int = 0
    corrupted: dict[str, int] = field(default_factory=dict)
    raw_records: int = 0
    raw_duplicates: int = 0
    dlq_by_reason: Counter[str] = field(default_factory=Counter)
    dlq_rows: int = 0
    lost_rows: list[str] = field(default_factory=list)
    in_raw_and_dlq: int = 0
    learnable: int = 0
    learned: int = 0
    prediction_duplicates: int = 0
    not_learned: list[str] = field(default_factory=list)
    fingerprints: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    faults: list[str] = field(default_factory=list)
    programs: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def fingerprints_equal(self) -> bool:
        return bool(self.fingerprints) and all(ref == live for ref, live in self.fingerprints.values())

    @property
    def passed(self) -> bool:
        return (not self.lost_rows and not self.not_learned and self.raw_duplicates == 0
                and self.in_raw_and_dlq == 0 and self.prediction_duplicates == 0 and self.fingerprints_equal)

    def table(self) -> str:
        rows = [
            ("rows in (CSV data lines)", self.rows_in),
            ("  corrupted in the copy", ", ".join(f"{k} {v}" for k, v in self.corrupted.items())),
            ("records in the raw topic", self.raw_records),
            ("rows in the DLQ (producer)", self.dlq_rows),
            ("rows lost (in neither)", len(self.lost_rows)),
            ("rows duplicated in raw", self.raw_duplicates),
            ("rows in raw and DLQ", self.in_raw_and_dlq),
            ("learnable raw records", self.learnable),
            ("rows learned (predictions)", self.learned),
            ("duplicate predictions", self.prediction_duplicates),
            ("learnable rows not learned", len(self.not_learned)),
        ]
        rows += [(f"DLQ: {reason}", n) for reason, n in sorted(self.dlq_by_reason.items())]
        rows += [(f"fingerprint {key}", f"reference {ref[:16]} live {(live or 'missing')[:16]} "
                  f"{'EQUAL' if ref == live else 'DIFFERENT'}")
                 for key, (ref, live) in self.fingerprints.items()]
        rows += [(f"program {name}", ", ".join(f"{k} {v}" for k, v in info.items()))
                 for name, info in self.programs.items()]
        rows += [("faults injected", "; ".join(self.faults)), ("wall time s", round(self.seconds, 1)),
                 ("RESULT", "PASS" if self.passed else "FAIL")]
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def _reason(dead: dict[str, Any]) -> str:
    stage = dead.get("stage") or "processor"
    # Positions inside the reason would split one kind of fault into many table lines.
    reason = _POSITION.sub("", str(dead.get("reason")))
    return f"{stage}: {reason[:70]}"


def run(config: ChaosConfig, on_event: Callable[[str], None] = lambda _m: None) -> Report:
    t0 = time.monotonic()
    work = config.workdir
    work.mkdir(parents=True, exist_ok=True)
    report = Report()
    base = config.csv or synthetic.write_csv(work / "base.csv", n_rows=config.rows, seed=config.seed)
    data = work / "chaos.csv"
    report.corrupted = write_with_corrupted_copy(base, data, config.seed)
    report.rows_in = data.read_bytes().count(b"\n") - 1

    broker = LocalBroker(BrokerConfig(port=free_port(), controller_port=free_port(), data_dir=work / "kafka",
                                      heap="512m", log_level="WARN"))
    broker.start()
    try:
        return _run(config, broker, data, report, on_event, t0)
    finally:
        broker.stop()


def _run(config: ChaosConfig, broker: LocalBroker, data: Path, report: Report,
         on_event: Callable[[str], None], t0: float) -> Report:
    work = config.workdir
    kafka = KafkaSettings(bootstrap_servers=broker.config.bootstrap)
    topics = Topics(prefix="chaos", raw_partitions=2)
    ensure_topics(kafka, topics.specs())
    port = free_port()
    proxy = DroppingProxy(port)
    logs = work / "logs"
    logs.mkdir(exist_ok=True)
    common = ["--topic-prefix", topics.prefix, "--raw-partitions", "2"]
    programs = {
        "serve": Supervised("serve", "producer", ["serve", "--csv", str(data), "--dataset", "co2",
                                                  "--port", str(port)], logs / "serve.log", False),
        "ingest": Supervised("ingest", "producer", [
            "ingest", "--url", f"http://127.0.0.1:{proxy.port}/events",
            "--bootstrap", kafka.bootstrap_servers, *common, "--rate", f"{config.rate:g}",
            "--state-dir", str(work / "ingest-state"),
            "--commit-interval", "0.2", "--max-backoff", "0.5"], logs / "ingest.log", True),
        "processor": Supervised("processor", "processor", [
            "--bootstrap", kafka.bootstrap_servers, *common, "--state-dir", str(work / "processor-state"),
            "--commit-interval", "0.5"], logs / "processor.log", False),
    }
    try:
        programs["serve"].start()
        wait_http(f"http://127.0.0.1:{port}/health", proc=programs["serve"].proc)
        programs["ingest"].start()
        programs["processor"].start()
        faults = schedule(config, report.rows_in / config.rate)
        start_t = time.monotonic()
        deadline = start_t + config.timeout
        while not (programs["ingest"].finished and not faults):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the ingest did not finish within {config.timeout:.0f}s")
            while faults and time.monotonic() - start_t >= faults[0][0]:
                at, action = faults.pop(0)
                what = action.split()[1]
                if action.startswith("kill") and programs[what].finished:
                    continue  # the stream already ended: the kill would prove nothing
                report.faults.append(f"{action} @{at:.1f}s")
                on_event(f"{at:6.1f}s  {action}")
                if action.startswith("kill"):
                    programs[what].sigkill()
                    if what == "serve":
                        wait_http(f"http://127.0.0.1:{port}/health", proc=programs["serve"].proc)
                elif action == "restart broker":
                    broker.stop()
                    time.sleep(2.0)
                    broker.start()
                else:
                    proxy.drop_all()
            for program in programs.values():
                program.supervise()
            time.sleep(0.2)

        raw = read_all(kafka, topics.raw)
        states, learnable = reference(kafka, raw)
        # Wait until every learnable row has its prediction (the processor follows the log).
        predicted: list[str] = []
        while time.monotonic() < deadline:
            programs["processor"].supervise()
            predicted = [str(json.loads(v)["id"]) for _k, v, _p, _o in read_all(kafka, topics.predictions)]
            if learnable <= set(predicted):
                break
            time.sleep(2.0)
    finally:
        for program in programs.values():
            program.stop()
        proxy.close()

    ids = [json.loads(v)["id"] for _k, v, _p, _o in raw]
    dead = [json.loads(v) for _k, v, _p, _o in read_all(kafka, topics.dlq)]
    predicted = [str(json.loads(v)["id"]) for _k, v, _p, _o in read_all(kafka, topics.predictions)]
    latest: dict[str, Snapshot] = {}
    for _k, value, _p, _o in read_all(kafka, topics.models):
        snap = Snapshot.decode(value)
        if snap.key not in latest or snap.learned >= latest[snap.key].learned:
            latest[snap.key] = snap
    producer_dead = [d for d in dead if d.get("stage") == "producer"]
    raw_ids = {str(i) for i in ids}
    dlq_ids = {str(d["id"]) for d in producer_dead}
    report.raw_records = len(ids)
    report.raw_duplicates = len(ids) - len(raw_ids)
    report.dlq_rows = len(producer_dead)
    report.dlq_by_reason = Counter(_reason(d) for d in dead)
    report.in_raw_and_dlq = len(raw_ids & dlq_ids) + (len(producer_dead) - len(dlq_ids))
    everything = {str(i) for i in range(1, report.rows_in + 1)}
    report.lost_rows = sorted(everything - raw_ids - dlq_ids, key=int)
    report.learnable = len(learnable)
    report.learned = len(set(predicted))
    report.prediction_duplicates = len(predicted) - len(set(predicted))
    report.not_learned = sorted(learnable - set(predicted), key=int)
    report.fingerprints = {key: (fingerprint(ks.model), latest[key].fingerprint if key in latest else None)
                           for key, ks in states.items()}
    report.programs = {name: {"starts": p.starts, "sigkills": p.kills, "unexpected exits": p.unexpected}
                       for name, p in programs.items()}
    report.programs["sse connections dropped"] = {"times": proxy.drops}
    report.seconds = time.monotonic() - t0
    return report
