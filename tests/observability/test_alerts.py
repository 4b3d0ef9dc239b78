"""``promtool check rules`` on docs/alerts.yml, and its unit tests (docs/alerts_test.yml)."""

from __future__ import annotations

import subprocess

from infra.prometheus import ALERTS
from tests.observability.test_prometheus import PROMTOOL, needs_promtool


@needs_promtool
def test_alert_rules_are_valid() -> None:
    assert PROMTOOL is not None
    done = subprocess.run([PROMTOOL, "check", "rules", str(ALERTS)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 10 rules found" in done.stdout


@needs_promtool
def test_alerts_fire_on_the_series_they_watch() -> None:
    assert PROMTOOL is not None
    done = subprocess.run([PROMTOOL, "test", "rules", "alerts_test.yml"], cwd=ALERTS.parent,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
