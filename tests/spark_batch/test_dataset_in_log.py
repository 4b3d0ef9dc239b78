"""The data set declared once, in the log: a keyed data set that exists only as the producer's flags.

Real broker, real programs: ``producer serve`` + ``producer ingest`` declared by flags, then
``python -m processor`` and ``python -m spark_batch replay`` without ``--dataset``: every row is
learned, nothing is dead-lettered, and the replay's models are the processor's. A ``--dataset``
that disagrees with the log's declaration is a one-line error, before any record is read.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from replay_support import REPO, run_cli

from infra.testing import end_offsets, free_port, kill, read_topic, start
from kappaml.catalog import read_declarations
from kappaml.kafka import KafkaSettings
from kappaml.snapshot import Snapshot, parse_snapshot_key
from kappaml.topics import Topics

pytestmark = [pytest.mark.kafka, pytest.mark.spark]

ROWS = 240
FLAGS = ("--name", "trips", "--target", "fuel", "--numeric", "km,load", "--categorical", "road",
         "--key", "vehicle", "--id-column", "trip")


def _write_csv(path: Path) -> Path:
    lines = ["trip,vehicle,km,load,road,fuel"]
    for i in range(ROWS):
        km, load = 5 + (i * 37) % 200, (i % 7) / 3
        road = ("city", "highway", "mixed")[i % 3]
        fuel = km * (6 + load) / 100 + (i % 3) * 0.4
        lines.append(f"t{i:04d},veh-{i % 5},{km},{load:.3f},{road},{fuel:.4f}")
    path.write_text("\n".join(lines) + "\n")
    return path


def _ingest_by_flags(kafka: KafkaSettings, topics: Topics, tmp: Path) -> None:
    csv, port, log = _write_csv(tmp / "trips.csv"), free_port(), tmp / "producer.log"
    serve = start("producer", ["serve", "--csv", str(csv), *FLAGS, "--port", str(port)], log)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline and serve.poll() is None, log.read_text()[-2000:]
                time.sleep(0.1)
        ingest = start("producer", [
            "ingest", "--url", f"http://127.0.0.1:{port}/events", *FLAGS,
            "--bootstrap", kafka.bootstrap_servers, "--topic-prefix", topics.prefix,
            "--raw-partitions", str(topics.raw_partitions),
            "--state-dir", str(tmp / "ingest"), "--commit-interval", "0.2"], log)
        try:
            deadline = time.monotonic() + 120
            # Committed, not only written: a SIGKILL before the commit aborts what it wrote (a run
            # here killed it with every row in one open transaction: "no committed records").
            while len(read_topic(kafka, topics.raw, timeout=10)) < ROWS:
                assert time.monotonic() < deadline and ingest.poll() in (None, 0), log.read_text()[-3000:]
                time.sleep(0.2)
        finally:
            kill(ingest)
    finally:
        kill(serve)


def _processor(kafka: KafkaSettings, topics: Topics, state: Path, *extra: str) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "processor", "--bootstrap", kafka.bootstrap_servers, "--topic-prefix",
            topics.prefix, "--raw-partitions", str(topics.raw_partitions), "--state-dir", str(state),
            "--commit-interval", "0.5", "--exit-when-idle", "6", "--log-level", "WARNING", *extra]
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=300)


def _live_fingerprints(kafka: KafkaSettings, topics: Topics, version: str) -> dict[tuple[int, str], str]:
    newest: dict[tuple[int, str], Snapshot] = {}
    for msg in read_topic(kafka, topics.models):
        snap = Snapshot.decode(msg.value())
        if parse_snapshot_key(msg.key().decode())[0] == version and snap.origin == "live":
            newest[(snap.partition, snap.key)] = snap
    return {slot: s.fingerprint for slot, s in newest.items()}


def test_a_data_set_declared_only_by_flags_is_read_from_the_log(kafka_settings, topics, tmp_path):
    _ingest_by_flags(kafka_settings, topics, tmp_path)
    declared = read_declarations(kafka_settings, topics.datasets)
    assert list(declared) == ["trips"] and declared["trips"].key == "vehicle"

    # A --dataset that disagrees with the log: a one-line error, non-zero, nothing read.
    other = tmp_path / "trips.toml"
    other.write_text('name = "trips"\ntarget = "fuel"\nfeatures = ["km", "load"]\nkey = "vehicle"\n')
    for flag, words in (("co2", "declares no data set 'co2'"), (str(other), "disagrees with the log's")):
        bad = _processor(kafka_settings, topics, tmp_path / "bad", "--dataset", flag)
        assert bad.returncode == 2, bad.stderr[-2000:]
        lines = bad.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], bad.stderr
    where = ["--bootstrap", kafka_settings.bootstrap_servers, "--topic-prefix", topics.prefix]
    replay = run_cli(["replay", *where, "--dataset", str(other), "--version", "r0",
                      "--output-dir", str(tmp_path / "r0")])
    assert replay.returncode != 0 and "disagrees with the log's" in replay.stderr, replay.stderr[-2000:]
    assert sum(end_offsets(kafka_settings, topics.dlq).values()) == 0
    assert sum(end_offsets(kafka_settings, topics.predictions).values()) == 0

    # No --dataset: the processor learns every row.
    ran = _processor(kafka_settings, topics, tmp_path / "state")
    assert ran.returncode == 0, ran.stderr[-3000:]
    predictions = [json.loads(m.value()) for m in read_topic(kafka_settings, topics.predictions)]
    assert len(predictions) == ROWS and {p["key"] for p in predictions} == {f"veh-{i}" for i in range(5)}
    assert sum(end_offsets(kafka_settings, topics.dlq).values()) == 0
    live = _live_fingerprints(kafka_settings, topics, "v1")
    assert len(live) == 5

    # No --dataset: the replay rebuilds the same models.
    out = tmp_path / "replay"
    proc = run_cli(["replay", *where, "--version", "r1", "--output-dir", str(out), "--no-publish",
                    "--spark-conf", "spark.ui.enabled=false"])
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dataset"] == "trips" and summary["totals"]["invalid"] == 0
    replayed = {(k["partition"], k["key"]): k["fingerprint"] for k in summary["keys"] if k.get("fingerprint")}
    assert replayed == live
