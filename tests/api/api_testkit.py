"""Helpers of the API tests: the real API and processor as subprocesses on the session's broker.

Imported by module name (pytest puts this directory on sys.path for its test modules).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from infra.testing import REPO, free_port, read_all, typed_rows
from kappaml import synthetic
from kappaml.catalog import publish_declaration
from kappaml.dataset import Dataset
from kappaml.kafka import KafkaSettings
from kappaml.snapshot import Snapshot, parse_snapshot_key
from kappaml.topics import Topics

DATASET = synthetic.dataset()


def synthetic_rows(tmp_path: Path, n: int, seed: int = 7) -> list[dict[str, Any]]:
    csv_path = synthetic.write_csv(tmp_path / f"synthetic-{seed}-{n}.csv", n_rows=n, seed=seed)
    return typed_rows(DATASET, csv_path)


def features_of(dataset: Dataset, row: dict[str, Any]) -> dict[str, Any]:
    return {f.name: row[f.name] for f in dataset.features}


def declare(kafka: KafkaSettings, topics: Topics, dataset: Dataset = DATASET) -> None:
    publish_declaration(kafka, topics.datasets, dataset)


class ApiProcess:
    """``python -m api`` on a free port; ``kill()`` is a SIGKILL, ``start()`` again restarts it."""

    def __init__(self, kafka: KafkaSettings, topics: Topics, *extra: str, instance: str = "api-test",
                 env: dict[str, str] | None = None) -> None:
        self.kafka, self.topics, self.extra, self.instance = kafka, topics, extra, instance
        self.port = free_port()
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90.0) -> ApiProcess:
        argv = [sys.executable, "-m", "api", "--port", str(self.port), "--bootstrap",
                self.kafka.bootstrap_servers, "--topic-prefix", self.topics.prefix, "--raw-partitions",
                str(self.topics.raw_partitions), "--instance-id", self.instance, "--log-level", "WARNING",
                "--dataset-wait", "30", *self.extra]
        self.proc = subprocess.Popen(argv, cwd=REPO, env=self.env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"the API exited {self.proc.returncode}: "
                                     f"{self.proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
            try:
                if httpx.get(f"{self.base}/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"the API did not become healthy within {timeout:.0f} s")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


@contextmanager
def running_api(kafka: KafkaSettings, topics: Topics, *extra: str, **kw: Any) -> Iterator[ApiProcess]:
    api = ApiProcess(kafka, topics, *extra, **kw).start()
    try:
        yield api
    finally:
        api.stop()


def start_processor(kafka: KafkaSettings, topics: Topics, state_dir: Path, *extra: str,
                    commit_interval: float = 0.5) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "processor", "--bootstrap", kafka.bootstrap_servers,
            "--topic-prefix", topics.prefix, "--raw-partitions", str(topics.raw_partitions),
            "--state-dir", str(state_dir), "--commit-interval", str(commit_interval),
            "--log-level", "WARNING", "--dataset-wait", "30", *extra]
    return subprocess.Popen(argv, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def live_snapshots(kafka: KafkaSettings, topics: Topics) -> list[Snapshot]:
    """Every committed live champion snapshot in the models topic, in log order per partition."""
    out = []
    for key, value, _p, _o in sorted(read_all(kafka, topics.models, timeout=20), key=lambda m: (m[2], m[3])):
        label, _key = parse_snapshot_key(key.decode())
        if "@" not in label and "+" not in label and value is not None:
            out.append(Snapshot.decode(value))
    return out


def wait_for_snapshot(kafka: KafkaSettings, topics: Topics, learned: int, timeout: float = 180) -> Snapshot:
    """The newest live snapshot once one has learned at least ``learned`` examples."""
    deadline = time.monotonic() + timeout
    best = None
    while time.monotonic() < deadline:
        snaps = live_snapshots(kafka, topics)
        if snaps:
            best = max(snaps, key=lambda s: s.learned)
            if best.learned >= learned:
                return best
        time.sleep(1)
    raise AssertionError(f"no snapshot with {learned} examples learned within {timeout:.0f} s "
                         f"(best: {best.learned if best else None})")
