"""Helpers of the UI tests: headless Chromium over the DevTools protocol, subprocess servers,
and writers of the pipeline's output records (in the processor's formats)."""

from __future__ import annotations

import base64
import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka import Producer
from websockets.sync.client import ClientConnection, connect

from kappaml.dataset import GLOBAL_KEY, Dataset
from kappaml.evaluation import PrequentialMetrics
from kappaml.fingerprint import fingerprint
from kappaml.kafka import KafkaSettings
from kappaml.learner import KeyState, StepResult, apply_record, learn_step
from kappaml.models import build_model
from kappaml.pending import LabelPolicy
from kappaml.records import (
    FeaturesRecord,
    KeyMetrics,
    LabelRecord,
    OverallMetrics,
    Prediction,
    Record,
    ServedPrediction,
    extract,
)
from kappaml.snapshot import Snapshot, snapshot_key
from kappaml.topics import Topics
from processor.outputs import key_metrics, prediction

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
    "--window-size=1400,1800", "--hide-scrollbars",
)
REPO = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------------------ browser
class Browser:
    """One headless Chromium with one page, driven over the DevTools protocol (a websocket)."""

    def __init__(self, profile: Path) -> None:
        self.profile = profile
        self.proc = subprocess.Popen(
            [str(CHROMIUM), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
             "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        self._ids = itertools.count(1)
        self._stack = ExitStack()
        self.ws: ClientConnection | None = None
        try:
            port = self._devtools_port()
            socket = connect(self._page_socket(port), max_size=None, open_timeout=20)
            self.ws = self._stack.enter_context(socket)
            self.call("Page.enable")
            self.call("Runtime.enable")
        except BaseException:
            self.close()
            raise

    def _devtools_port(self) -> int:
        marker = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chromium exited with code {self.proc.returncode}")
            if marker.exists():
                text = marker.read_text().split("\n")
                if text and text[0].strip().isdigit():
                    return int(text[0])
            time.sleep(0.1)
        raise TimeoutError("chromium did not open its DevTools port")

    @staticmethod
    def _page_socket(port: int) -> str:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=5).json()
            pages = [t for t in targets if t.get("type") == "page"]
            if pages:
                return pages[0]["webSocketDebuggerUrl"]
            time.sleep(0.1)
        raise TimeoutError("chromium has no page target")

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        assert self.ws is not None
        ident = next(self._ids)
        self.ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv(timeout=60))
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def goto(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"javascript failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 60.0) -> Any:
        """Poll a JavaScript expression until it is truthy; its value."""
        deadline = time.monotonic() + timeout
        value: Any = None
        while time.monotonic() < deadline:
            try:
                value = self.evaluate(expression)
            except RuntimeError as exc:  # e.g. no document.body yet while the page loads
                value = str(exc)[:200]
            else:
                if value:
                    return value
            time.sleep(0.25)
        raise TimeoutError(f"not true within {timeout:.0f} s: {expression} (last value {value!r})")

    def dom(self) -> str:
        return str(self.evaluate("document.documentElement.outerHTML"))

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=False)["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        self._stack.close()
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def streamlit_argv(port: int, *script_args: str) -> list[str]:
    """``streamlit run ui/app.py`` as ``make run`` starts it; ``script_args`` go after ``--``."""
    return [sys.executable, "-m", "streamlit", "run", str(REPO / "ui" / "app.py"), "--server.port", str(port),
            "--server.headless", "true", "--browser.gatherUsageStats", "false",
            "--server.fileWatcherType", "none", *(("--", *script_args) if script_args else ())]


def ui_env(kafka: KafkaSettings, topics: Topics, dataset: str = "co2") -> dict[str, str]:
    return {"KAPPAML_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
            "KAPPAML_TOPIC_PREFIX": topics.prefix, "KAPPAML_DATASET": dataset,
            "KAPPAML_LOG_LEVEL": "WARNING"}


def tmpdir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))


# ------------------------------------------------------------------------------ pipeline records
class Pipeline:
    """Writes what a processor (and a replay) would write, computed with real models and metrics."""

    def __init__(self, kafka: KafkaSettings, topics: Topics, dataset: Dataset) -> None:
        self.topics = topics
        self.dataset = dataset
        self.producer = Producer({**kafka.client_config(), "linger.ms": 5,
                                  "message.max.bytes": 16 * 1024 * 1024})

    def learn(self, rows: Iterable[dict[str, Any]], *, version: str = "v1", spec: str = "rls",
              origin: str = "live", metrics_every: int = 50,
              start_ts: int | None = None) -> tuple[Snapshot, dict[str, Any]]:
        """Predict-then-learn over ``rows`` (typed rows of the dataset, one global key) with the
        processor's own step and record builders, writing predictions, per-key and overall
        metrics, and a final model snapshot."""
        state = KeyState(key=GLOBAL_KEY, spec=spec, version=version, model=build_model(spec, self.dataset),
                         metrics=PrequentialMetrics(window=100))
        ts0 = start_ts if start_ts is not None else int(time.time() * 1000) - 600_000
        for i, row in enumerate(rows):
            ts = ts0 + i * 100
            example = extract(self.dataset, {"id": i + 1, "key": GLOBAL_KEY, "ts": ts, "row": row})
            result = learn_step(state, example, offset=i)
            assert result is not None
            partition = i % self.topics.raw_partitions
            self._json(self.topics.predictions, example.key,
                       prediction(state, example, result, partition, i, ts + 7), partition=partition)
            if (i + 1) % metrics_every == 0:
                values = state.metrics.get()
                self._json(self.topics.metrics, example.key, key_metrics(state, ts))
                self._json(self.topics.metrics, "__overall__", {
                    "scope": "overall", "key": "__overall__", "version": version, "spec": spec,
                    "instance": "test", "keys": 1, "learned": i + 1, "skipped": 0, "invalid": 0,
                    "rmse": values["rmse"], "mae": values["mae"], "throughput": 500.0,
                    "latency_ms": {"p50": 5, "p95": 9, "p99": 12}, "ts": ts})
        snapshot = Snapshot(key=GLOBAL_KEY, version=version, spec=spec, origin=origin,  # type: ignore[arg-type]
                            partition=0, offset=state.last_offset, learned=state.learned,
                            fingerprint=fingerprint(state.model), model=state.model,
                            created_at=ts0 + state.last_offset * 100)
        self.producer.produce(self.topics.models, key=snapshot_key(version, GLOBAL_KEY).encode(),
                              value=snapshot.encode(), partition=0)
        self.flush()
        return snapshot, state.metrics.get()

    def write(self, run: DelayedRun) -> None:
        """A ``delayed_run``'s records, to the predictions and metrics topics."""
        for role, key, record in run.records:
            self._json(self.topics.predictions if role == "predictions" else self.topics.metrics, key, record)
        self.flush()

    def overall(self, version: str, ts: int, **fields: Any) -> None:
        """One overall metrics record (e.g. a fresh one: the processor is alive)."""
        self._json(self.topics.metrics, "__overall__", {
            "scope": "overall", "key": "__overall__", "version": version, "spec": "rls", "instance": "test",
            "keys": 1, "learned": 0, "skipped": 0, "invalid": 0, "rmse": None, "mae": None,
            "throughput": 0.0, "latency_ms": {}, "ts": ts, **fields})
        self.flush()

    def dead_letters(self, reasons: list[str], stage: str = "processor") -> None:
        for i, reason in enumerate(reasons):
            self._json(self.topics.dlq, None, {
                "stage": stage, "reason": reason, "detail": {},
                "source": {"topic": self.topics.raw, "partition": 0, "offset": 10_000 + i},
                "key": "__all__", "value": "{not json", "value_encoding": "utf-8",
                "ts": int(time.time() * 1000)})
        self.flush()

    def _json(self, topic: str, key: str | None, value: dict[str, Any] | Record, partition: int = 0) -> None:
        encoded = value.encode() if isinstance(value, Record) else json.dumps(value).encode()
        self.producer.produce(topic, key=key.encode() if key is not None else None, value=encoded,
                              partition=partition)
        self.producer.poll(0)

    def flush(self) -> None:
        assert self.producer.flush(30) == 0


@dataclass
class DelayedRun:
    """What a processor writes for a stream with delayed labels, in the order it writes it."""

    records: list[tuple[str, str, Record]]  # (topic role, Kafka key, record)
    state: KeyState
    dropped: list[int]  # row ids whose label never came


def delayed_run(dataset: Dataset, rows: list[dict[str, Any]], *, delay: int, drop: set[int] = frozenset(),
                ttl: str = "50", on_missing: str = "drop", version: str = "v1", spec: str = "rls",
                metrics_every: int = 20, ts0: int | None = None) -> DelayedRun:
    """Features of row i at once, its label ``delay`` rows later (none for the ids in ``drop``),
    handled by the core's ``apply_record`` with ``LabelPolicy.parse(ttl, on_missing)``: the
    served predictions, the scored ones (labelled or expired) and per-key and overall metrics
    with the delayed-label figures, one global key, one partition."""
    policy = LabelPolicy.parse(ttl, on_missing)
    state = KeyState(key=GLOBAL_KEY, spec=spec, version=version, model=build_model(spec, dataset),
                     metrics=PrequentialMetrics(window=100))
    ts0 = ts0 if ts0 is not None else int(time.time() * 1000) - 600_000
    stream = f"{dataset.name}@test"
    raw: list[FeaturesRecord | LabelRecord] = []
    for i, row in enumerate(rows, start=1):
        x = {f: row[f] for f in dataset.feature_names}
        raw.append(FeaturesRecord(id=i, key=GLOBAL_KEY, x=x, ts=ts0 + i * 100, stream=stream))
        j = i - delay
        if j >= 1 and j not in drop:
            raw.append(LabelRecord(id=j, key=GLOBAL_KEY, y=float(rows[j - 1][dataset.target]),
                                   ts=ts0 + i * 100 + 1, stream=stream))
    out: list[tuple[str, str, Record]] = []

    def scored(result: StepResult, offset: int, ts: int | None) -> Prediction:
        assert result.id is not None
        return Prediction(key=GLOBAL_KEY, id=result.id, y_true=result.y_true, y_pred=result.y_pred,
                          error=result.error, version=version, spec=spec, partition=0, offset=offset,
                          event_ts=ts, processed_ts=(ts or ts0) + 7, role="champion",
                          generation=result.generation, delay_ms=result.delay_ms,
                          delay_rows=result.delay_rows, served_offset=result.served_offset,
                          expired=True if result.expired else None)

    for offset, record in enumerate(raw):
        outcome = apply_record(state, record, offset, policy)
        for expiry in outcome.expired:
            if expiry.learned is not None:
                out.append(("predictions", GLOBAL_KEY, scored(expiry.learned, offset, record.ts)))
        if outcome.served is not None:
            s = outcome.served
            out.append(("predictions", GLOBAL_KEY, ServedPrediction(
                key=GLOBAL_KEY, id=s.id, y_pred=s.y_pred, version=version, spec=spec, partition=0,
                offset=offset, event_ts=s.ts, processed_ts=(s.ts or ts0) + 5, role="champion",
                generation=s.generation)))
        if outcome.learned is not None:
            out.append(("predictions", GLOBAL_KEY, scored(outcome.learned, offset, record.ts)))
        if (offset + 1) % metrics_every == 0 or offset == len(raw) - 1:
            ts = record.ts or ts0
            figures = state.labels.figures()
            out.append(("metrics", GLOBAL_KEY, KeyMetrics(
                key=GLOBAL_KEY, version=version, spec=spec, role="champion", learned=state.learned,
                skipped=state.skipped, last_offset=state.last_offset, ts=ts, **state.metrics.get(),
                **figures)))
            values = state.metrics.get()
            out.append(("metrics", "__overall__", OverallMetrics(
                version=version, spec=spec, learned=state.learned, ts=ts, rmse=values["rmse"],
                mae=values["mae"], keys=1, instance="test", served=figures["features_served"],
                label_ttl=policy.ttl_text, on_missing_label=policy.on_missing_text, **figures)))
    return DelayedRun(out, state, sorted(drop))


def synthetic_rows(n: int, seed: int = 7) -> list[dict[str, Any]]:
    """Typed rows of the seeded synthetic CO2 generator (the co2 declaration's columns)."""
    from kappaml import synthetic
    from kappaml.dataset import builtin
    from kappaml.records import parse_row

    dataset = builtin("co2")
    return [parse_row(dataset, dict(zip(synthetic.COLUMNS, fields, strict=True)), i)
            for i, fields in enumerate(synthetic.rows(n, seed), start=1)]


def chart_data(element: Any) -> tuple[dict[str, Any], Any]:
    """(vega-lite spec, first dataset as a DataFrame) of an AppTest chart element."""
    import pyarrow as pa

    spec = json.loads(element.proto.spec)
    datasets = element.proto.datasets
    if not datasets:
        return spec, None
    table = pa.ipc.open_stream(datasets[0].data.data).read_all()
    return spec, table.to_pandas()


def commit_group(kafka: KafkaSettings, group: str, topic: str, offsets: dict[int, int]) -> None:
    """Commit ``offsets`` for a consumer group, as a processor of that group would."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({**kafka.client_config(), "group.id": group, "enable.auto.commit": False})
    try:
        consumer.commit(offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()], asynchronous=False)
    finally:
        consumer.close()
