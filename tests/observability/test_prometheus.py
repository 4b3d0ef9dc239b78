"""A real Prometheus scrapes a real processor on the real broker; promtool checks every program's output."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from infra.prometheus import PrometheusServer, find_binary
from infra.testing import free_port, produce_bytes, produce_raw, typed_rows
from kappaml import synthetic
from kappaml.dataset import builtin
from tests.conftest import REPO

pytestmark = pytest.mark.kafka

PROMETHEUS = find_binary("prometheus")
PROMTOOL = find_binary("promtool")
needs_prometheus = pytest.mark.skipif(PROMETHEUS is None, reason="prometheus is not installed "
                                      "(Debian package prometheus; `make setup` installs it as root)")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed "
                                    "(Debian package prometheus; `make setup` installs it as root)")


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return response.read().decode()


def promtool_check_metrics(text: str) -> None:
    assert PROMTOOL is not None
    done = subprocess.run([PROMTOOL, "check", "metrics"], input=text.encode(), capture_output=True,
                          timeout=30)
    problems = (done.stdout + done.stderr).decode()
    assert done.returncode == 0 and not problems.strip(), problems


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except OSError as exc:  # the endpoint is not up yet
            last = exc
        else:
            if last:
                return last
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def value(prom: PrometheusServer, query: str) -> float | None:
    result = prom.query(query)
    return float(result[0]["value"][1]) if result else None


def _all_zero(series: list[dict[str, Any]], partitions: int) -> bool:
    values = {s["metric"]["partition"]: float(s["value"][1]) for s in series}
    if len(values) == partitions and not any(values.values()):
        return True
    raise _NotYet(values)


class _NotYet(OSError):
    """Not there yet; the value is shown if it never gets there."""


@needs_prometheus
@needs_promtool
def test_prometheus_scrapes_the_processor(kafka_settings, topics, tmp_path: Path) -> None:
    n = 300
    dataset = builtin("co2")
    csv = synthetic.write_csv(tmp_path / "rows.csv", n_rows=n, seed=3)
    produce_raw(kafka_settings, topics.raw, dataset, typed_rows(synthetic.dataset(), csv))
    produce_bytes(kafka_settings, topics.raw, [(b"__all__", b"not json at all")])
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "processor", "--bootstrap", kafka_settings.bootstrap_servers,
         "--topic-prefix", topics.prefix, "--raw-partitions", str(topics.raw_partitions),
         "--state-dir", str(tmp_path / "state"), "--commit-interval", "0.5", "--log-level", "WARNING",
         "--metrics-port", str(port), "--dataset", "co2"],  # no ingest declares it here
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    prom = PrometheusServer(tmp_path / "prometheus", free_port(), {"processor": f"127.0.0.1:{port}"},
                            interval=1.0)
    try:
        prom.start()
        learned = "kappaml_processor_messages_learned_total"
        wait_for(f"{learned} == {n}", lambda: value(prom, learned) == n)
        lag = "kappaml_processor_consumer_lag_messages"
        wait_for("consumer lag 0 on every partition",
                 lambda: _all_zero(prom.query(lag), topics.raw_partitions))
        dlq = 'kappaml_processor_dead_letters_total{reason="not_json"}'
        wait_for(f"{dlq} == 1", lambda: value(prom, dlq) == 1)
        assert value(prom, "kappaml_processor_messages_total") == n + 1
        assert value(prom, "sum(kappaml_processor_dead_letters_total)") == 1
        assert value(prom, 'kappaml_processor_event_to_prediction_seconds_count') == n
        assert value(prom, 'kappaml_processor_learn_seconds_count{spec="rls"}') == n
        assert (value(prom, "kappaml_processor_checkpoint_seconds_count") or 0) >= 1
        assert (value(prom, "kappaml_processor_transaction_commit_seconds_count") or 0) >= 1
        assert (value(prom, 'kappaml_processor_rolling_rmse{role="champion"}') or 0) > 0
        assert value(prom, "kappaml_processor_state_keys") == 1
        assert value(prom, 'up{job="processor"}') == 1
        promtool_check_metrics(scrape(port))
    finally:
        prom.stop()
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()[-2000:]
