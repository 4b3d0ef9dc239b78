"""``make run ARGS=--prometheus``: the stack's own Prometheus scrapes every program it started."""

from __future__ import annotations

import signal
import socket
import threading
import time
import uuid
from pathlib import Path

import pytest

from infra.stack import Stack, default_programs
from infra.testing import free_port
from tests.observability.test_prometheus import needs_prometheus

pytestmark = pytest.mark.kafka


def _consecutive_free_ports(n: int) -> int:
    for _ in range(50):
        base = free_port()
        if base + n < 65536 and all(_free(base + i) for i in range(1, n)):
            return base
    raise AssertionError("no run of free ports")


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@needs_prometheus
def test_make_run_prometheus_scrapes_the_programs(broker, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)  # the programs' default state directories
    monkeypatch.setenv("KAPPAML_TOPIC_PREFIX", f"run{uuid.uuid4().hex[:8]}")
    monkeypatch.setenv("KAPPAML_SYNTHETIC_ROWS", "2000")
    monkeypatch.setenv("KAPPAML_CACHE_DIR", str(tmp_path / "cache"))
    programs = [p for p in default_programs(broker.config.bootstrap, None, free_port(), free_port(), 200.0,
                                            free_port(), metrics_port=_consecutive_free_ports(4))
                if p.name not in ("ui", "api")]  # ui: no metrics of its own; api: tests/api/test_metrics.py
    stack = Stack(broker, programs, tmp_path / "data" / "logs", prometheus_port=free_port())
    assert stack.prometheus is not None
    stack.prometheus.interval = 1.0
    jobs = {p.name for p in programs}
    seen: dict[str, float] = {}

    def watch() -> None:
        deadline = time.monotonic() + 90
        try:
            # Prometheus scrapes its targets at staggered times: stop once every job was seen up and
            # the processor learned, not at the first learned sample (CI once saw sse-server unscraped).
            while time.monotonic() < deadline and not (
                seen.get("learned") and all(seen.get(job) == 1.0 for job in jobs)
            ):
                time.sleep(0.5)
                try:
                    up = stack.prometheus.query("up")
                    seen.update({r["metric"]["job"]: float(r["value"][1]) for r in up})
                    learned = stack.prometheus.query("kappaml_processor_messages_learned_total")
                    seen["learned"] = float(learned[0]["value"][1]) if learned else 0.0
                except OSError:
                    continue  # not started yet
        finally:
            stack._request_stop()  # noqa: SLF001 - what SIGTERM does

    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        code = stack.run()
    finally:
        signal.signal(signal.SIGINT, handlers[0])
        signal.signal(signal.SIGTERM, handlers[1])
    watcher.join(10)
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"prometheus   {stack.prometheus.url}" in out
    for program in programs:
        assert f"metrics http://{program.metrics}/metrics" in out
    assert {job: seen.get(job) for job in jobs} == dict.fromkeys(jobs, 1.0), seen
    assert seen["learned"] > 0
    assert (tmp_path / "data" / "prometheus" / "prometheus.yml").exists()
    assert stack.prometheus.proc is not None and stack.prometheus.proc.poll() is not None
