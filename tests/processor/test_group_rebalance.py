"""A processor group over a 12-partition keyed raw topic: partitions, keys and their state move.

Three instances share the work; one is SIGKILLed and never comes back (its partitions move to the
other two, which restore those keys' models from the changelogs), then a fourth starts with an
empty state directory (partitions move again, restored from the changelogs alone). Every row
must still be predicted exactly once and every key's model must end equal to one uninterrupted
sequential pass over the raw log.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from infra.testing import CommittedWatcher, PacedWriter, read_all, wait_settled
from kappaml.fingerprint import fingerprint
from kappaml.kafka import KafkaSettings
from kappaml.models import DEFAULT_SPEC
from kappaml.snapshot import Snapshot
from kappaml.topics import Topics, ensure_topics
from tests.conftest import REPO
from tests.processor.test_processor import fleet, latest_snapshots, reference_states

pytestmark = pytest.mark.kafka

PARTITIONS = 12
KEYS = 24
ROWS = 3600
RATE = 150.0  # rows/s: about 24 s of stream, long enough for both moves to land mid-stream


def _start(topics: Topics, kafka: KafkaSettings, state_dir: Path, toml: Path) -> subprocess.Popen:
    argv = [sys.executable, "-m", "processor", "--bootstrap", kafka.bootstrap_servers,
            "--topic-prefix", topics.prefix, "--raw-partitions", str(PARTITIONS),
            "--state-dir", str(state_dir), "--commit-interval", "0.5", "--log-level", "WARNING",
            "--drift", "none", "--dataset", str(toml),
            # A dead static member keeps its partitions until its session times out.
            "--session-timeout", "6"]
    return subprocess.Popen(argv, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _wait(predicate, timeout: float, what: str, procs: list[subprocess.Popen]) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        exited = [p for p in procs if p.poll() not in (None, -signal.SIGKILL)]
        if exited or time.monotonic() > deadline:
            said = b"".join(p.communicate()[1][-2000:] for p in exited).decode(errors="replace")
            raise AssertionError(f"timed out waiting for {what} {said}")
        time.sleep(0.1)


def test_keys_and_their_state_move_when_instances_leave_and_join(kafka_settings, tmp_path):
    topics = Topics(prefix=f"t{uuid.uuid4().hex[:10]}", raw_partitions=PARTITIONS)
    ensure_topics(kafka_settings, topics.specs())
    dataset, rows, toml = fleet(tmp_path, ROWS)
    for i, row in enumerate(rows):
        row["vehicle"] = f"v{i % KEYS}"
    watcher = CommittedWatcher(kafka_settings, topics.predictions)
    watcher.start()
    watcher.ready.wait(10)
    procs = [_start(topics, kafka_settings, tmp_path / f"state{i}", toml) for i in range(3)]
    writer = PacedWriter(kafka_settings, topics.raw, dataset, rows, RATE)
    writer.start()
    try:
        _wait(lambda: writer.written >= ROWS // 3 and watcher.count() >= ROWS // 4, 180,
              "a third of the stream predicted", procs)
        procs[2].send_signal(signal.SIGKILL)  # never restarted: its partitions must move
        procs[2].wait()
        _wait(lambda: writer.written >= 2 * ROWS // 3, 180, "two thirds of the stream written", procs)
        procs.append(_start(topics, kafka_settings, tmp_path / "fresh", toml))  # no local state
        writer.join(timeout=180)
        _wait(lambda: len({r["id"] for _t, r in watcher.arrivals}) >= ROWS, 240,
              "a prediction for every row", procs)
        time.sleep(1.5)  # anything extra (a duplicate) would show up by now
    finally:
        writer.stop()
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        stderr = [proc.communicate(timeout=60)[1] for proc in procs]
        watcher.stop()
    records = [r for _t, r in watcher.arrivals]
    assert sorted(r["id"] for r in records) == list(range(1, ROWS + 1)), "one prediction per row"
    assert len({r["partition"] for r in records}) == PARTITIONS, "keys spread over every partition"
    reference = reference_states(kafka_settings, topics, dataset, DEFAULT_SPEC)
    # The final snapshots: only once no transaction is open on the models topic (one left open
    # hides every later commit from a read_committed reader until the broker ends it).
    wait_settled(kafka_settings, topics.models)
    snaps = latest_snapshots(kafka_settings, topics)
    assert set(snaps) == set(reference) == {f"v{i}" for i in range(KEYS)}
    for key, ks in reference.items():
        assert (snaps[key].learned, snaps[key].fingerprint) == (ks.learned, fingerprint(ks.model)), \
            _history(kafka_settings, topics, key)
    assert all(b"Traceback" not in err for err in stderr[:2] + stderr[3:]), stderr


def _history(kafka_settings, topics: Topics, key: str) -> str:  # type: ignore[no-untyped-def]
    """Every snapshot of ``key``, committed and not, for the failure message."""
    lines = []
    for committed in (True, False):
        for _k, value, partition, offset in read_all(kafka_settings, topics.models, committed=committed):
            snap = Snapshot.decode(value)
            if snap.key == key:
                lines.append(f"committed={committed} models[{partition}]@{offset}: raw offset "
                             f"{snap.partition}/{snap.offset} learned {snap.learned} {snap.extra}")
    return f"{key}:\n" + "\n".join(lines)


def test_a_session_timeout_the_broker_refuses_is_a_one_line_error(kafka_settings, topics, tmp_path):
    argv = [sys.executable, "-m", "processor", "--bootstrap", kafka_settings.bootstrap_servers,
            "--topic-prefix", topics.prefix, "--raw-partitions", str(topics.raw_partitions),
            "--state-dir", str(tmp_path / "state"), "--dataset", "co2", "--session-timeout", "2"]
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.splitlines()[-1].startswith("error: the broker refuses --session-timeout 2 s")
    assert "Traceback" not in proc.stderr
