"""Issue 15, items 2 and 5: ``make run`` (``python -m infra run``) as a new user runs it.

The stack runs as a real process against the session's broker (its data dir is linked in, so
the stack reuses that broker instead of starting one) with its own ports, prefix and state.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from confluent_kafka.admin import AdminClient, ConfigResource

from infra.broker import LocalBroker
from infra.stack import Program, Stack
from infra.testing import end_offsets, free_port
from kappaml import synthetic
from kappaml.kafka import KafkaSettings
from tests.conftest import REPO

pytestmark = pytest.mark.kafka


def listening(port: int) -> set[str]:
    """The IPv4 addresses something listens on at ``port`` ("0.0.0.0" for every interface)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        address, hex_port = fields[1].split(":")
        if fields[3] == "0A" and int(hex_port, 16) == port:
            found.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    for line in Path("/proc/net/tcp6").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and int(fields[1].split(":")[1], 16) == port:
            found.add("[::]")
    return found


class RunningStack:
    def __init__(self, broker: LocalBroker, tmp: Path, *args: str) -> None:
        self.prefix = f"t{uuid.uuid4().hex[:10]}"
        data = tmp / "data"
        data.mkdir()
        (data / "kafka").symlink_to(broker.data_dir)
        self.sse_port, self.ui_port, self.feeds_port = free_port(), free_port(), free_port()
        self.api_port = free_port()
        self.out, self.err = tmp / "stdout.txt", tmp / "stderr.txt"
        env = {**os.environ, "KAPPAML_TOPIC_PREFIX": self.prefix, "KAPPAML_STATE_DIR": str(tmp / "state"),
               "KAPPAML_RAW_PARTITIONS": "2", "KAPPAML_LOG_LEVEL": "INFO"}
        argv = [sys.executable, "-m", "infra", "run", "--port", str(broker.config.port), "--controller-port",
                str(broker.config.controller_port), "--data-dir", str(data), "--sse-port", str(self.sse_port),
                "--ui-port", str(self.ui_port), "--feeds-port", str(self.feeds_port),
                "--api-port", str(self.api_port), *args]
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=out, stderr=err)

    def text(self) -> str:
        return self.out.read_text() + self.err.read_text()

    def wait_for(self, needle: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self.text():
            assert self.proc.poll() is None, f"stack exited {self.proc.returncode}:\n{self.text()[-3000:]}"
            assert time.monotonic() < deadline, f"no {needle!r} within {timeout}s:\n{self.text()[-3000:]}"
            time.sleep(0.2)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)


def test_rate_0_replays_the_csv_once_instead_of_flooding_kafka(
        broker: LocalBroker, kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    csv = synthetic.write_csv(tmp_path / "small.csv", n_rows=400, seed=3)
    stack = RunningStack(broker, tmp_path, "--csv", str(csv), "--rate", "0")
    try:
        stack.wait_for("kappaml is running", 120)
        assert "one pass at full speed" in stack.text()
        # Item 6: the UI binds this machine only, like every other program.
        deadline = time.monotonic() + 90
        while not listening(stack.ui_port) and time.monotonic() < deadline:
            time.sleep(0.3)
        assert listening(stack.ui_port) == {"127.0.0.1"}
        stack.wait_for("ingest finished", 120)
        raw = f"{stack.prefix}.raw"
        first = sum(end_offsets(kafka_settings, raw).values())
        time.sleep(3)
        # One pass: 400 records (and a commit marker per transaction), not a growing flood.
        assert sum(end_offsets(kafka_settings, raw).values()) == first
        assert 400 <= first < 440
        # The prediction API runs beside them, at the address the table gives, on the live model.
        assert f"http://127.0.0.1:{stack.api_port}/predict" in stack.text()
        row = {f.name: 1.0 for f in synthetic.dataset().features if f.kind == "numeric"}
        row.update({f.name: False for f in synthetic.dataset().features if f.kind == "boolean"})
        deadline, answer = time.monotonic() + 120, None
        while time.monotonic() < deadline and (answer is None or answer.get("offset", -1) < 0):
            try:
                response = httpx.post(f"http://127.0.0.1:{stack.api_port}/predict", params={"log": "false"},
                                      json={"features": row}, timeout=10)
                answer = response.json() if response.status_code == 200 else None
            except httpx.HTTPError:
                pass
            time.sleep(1)
        assert answer is not None and answer["offset"] >= 0 and answer["version"] == "v1", answer
    finally:
        code = stack.stop()
    assert code == 0, stack.text()[-3000:]
    assert "kappaml stopped." in stack.text()


def test_the_local_broker_bounds_what_it_keeps_per_partition(kafka_settings: KafkaSettings, topics) -> None:
    admin = AdminClient(kafka_settings.client_config())
    resource = ConfigResource(ConfigResource.Type.TOPIC, topics.raw)
    config = admin.describe_configs([resource])[resource].result(timeout=10)
    assert int(config["retention.bytes"].value) == 256 * 1024 * 1024
    assert int(config["segment.bytes"].value) <= 64 * 1024 * 1024


def test_a_second_make_run_says_which_port_is_taken_and_starts_nothing(
        broker: LocalBroker, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        stack = RunningStack(broker, tmp_path, "--sse-port", str(port))
        assert stack.proc.wait(60) == 1
    err = stack.err.read_text()
    assert f"error: port 127.0.0.1:{port} (sse-server) is taken by pid {os.getpid()}: " in err
    assert "kappaml is running" not in stack.text()
    assert not (tmp_path / "data" / "logs" / "sse-server.log").exists()


def test_a_bad_csv_shows_the_programs_own_error_and_stops_everything(
        broker: LocalBroker, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    stack = RunningStack(broker, tmp_path, "--csv", str(bad))
    assert stack.proc.wait(120) == 1
    err = stack.err.read_text()
    assert "error: sse-server failed (exit code 2); stopping everything" in err
    # The program's one-line reason, not only its exit code.
    assert "header lacks column(s)" in err, err
    assert "kappaml stopped." in stack.text()


def test_a_program_that_exits_0_unexpectedly_stops_the_stack(broker: LocalBroker, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    quits = Program("feeds", (sys.executable, "-c", "print('feeds: nothing to do, bye')"))
    sleeps = Program("ui", (sys.executable, "-c", "import time; time.sleep(60)"))
    assert Stack(broker, [sleeps, quits], tmp_path / "logs").run() == 1
    err = capsys.readouterr().err
    assert "error: feeds stopped unexpectedly (exit code 0); stopping everything" in err
    assert "feeds: nothing to do, bye" in err


def test_outside_the_venv_a_command_says_so_in_one_line(tmp_path: Path) -> None:
    base = Path(sys.base_prefix) / "bin" / "python3"
    probe = subprocess.run([str(base), "-c", "import confluent_kafka"], capture_output=True, check=False)
    if probe.returncode == 0:
        pytest.skip(f"{base} has kappaml's dependencies: there is no python outside the venv to try")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    for command in (["spark_batch", "replay"], ["processor"], ["infra", "status"], ["producer", "serve"]):
        done = subprocess.run([str(base), "-m", *command], cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=60, check=False)
        assert done.returncode == 1
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
        assert done.stderr.startswith("error: 'confluent_kafka' is not installed for ")
        assert ". .venv/bin/activate" in done.stderr


def test_infra_help_describes_every_option() -> None:
    from infra.__main__ import _parser

    parser = _parser()
    undocumented = [a.option_strings for a in parser._actions if not a.help]  # noqa: SLF001
    assert undocumented == []
    assert "--ui-host" in parser.format_help()
