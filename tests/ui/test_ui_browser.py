"""End to end in headless Chromium: the running Streamlit app draws and refreshes the RMSE
chart; a browser ``EventSource`` receives the SSE feed."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from ui_lifecycle_kit import LifecycleWriter, SpecFigures, comparison_record, drift_record, promotion_record
from ui_testkit import (
    CHROMIUM,
    Browser,
    Pipeline,
    delayed_run,
    streamlit_argv,
    synthetic_rows,
    ui_env,
)

from infra.testing import free_port, spawn, start, stop, wait_http
from kappaml.dataset import GLOBAL_KEY, builtin
from kappaml.kafka import KafkaSettings
from kappaml.topics import Topics

pytestmark = [
    pytest.mark.kafka,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is absent: install it with "
                       "`apt-get update && apt-get install -y chromium` to run the browser tests"),
]

# Where the screenshot is kept for a person to look at (outside the repository by default).
SHOTS = Path(os.environ.get("KAPPAML_UI_SCREENSHOTS", "/tmp/kappaml-ui-screenshots"))

# The SVG of the chart whose value axis is the RMSE (vega-embed draws SVG in Streamlit).
RMSE_SVG = """(() => {
  const charts = Array.from(document.querySelectorAll('.vega-embed svg'));
  return charts.find(svg => Array.from(svg.querySelectorAll('text'))
                              .some(t => t.textContent.startsWith('RMSE (g/km)'))) || null;
})()"""


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    b = Browser(tmp_path / "chromium-profile")
    try:
        yield b
    finally:
        b.close()


@pytest.fixture
def streamlit_app(kafka_settings: KafkaSettings, topics: Topics, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    log = tmp_path / "streamlit.log"
    # Kafka and the prefix as script arguments (how a launcher passes them), the rest from the env.
    env = {**ui_env(kafka_settings, topics), "KAPPAML_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
           "KAPPAML_TOPIC_PREFIX": "not-this-one"}
    argv = streamlit_argv(port, "--bootstrap", kafka_settings.bootstrap_servers,
                          "--topic-prefix", topics.prefix)
    proc = spawn(argv, log, env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/_stcore/health", timeout=60, proc=proc, log=log)
        yield url
    finally:
        stop(proc, timeout=15)


def test_the_running_app_draws_and_refreshes_the_rmse_chart(
        streamlit_app: str, browser: Browser, kafka_settings: KafkaSettings, topics: Topics) -> None:
    pipe = Pipeline(kafka_settings, topics, builtin("co2"))
    rows = synthetic_rows(300)
    now = int(time.time() * 1000)
    pipe.learn(rows, version="v1", spec="rls", start_ts=now - 60_000)
    pipe.learn(rows[:150], version="v2", spec="linear", origin="replay", start_ts=now - 90_000)

    browser.goto(streamlit_app)
    browser.wait_for(f"{RMSE_SVG} !== null", timeout=90)
    chart = browser.wait_for(f"""(() => {{
      const svg = {RMSE_SVG};
      const texts = Array.from(svg.querySelectorAll('text')).map(t => t.textContent);
      const lines = Array.from(svg.querySelectorAll('.mark-line path'))
                         .filter(p => (p.getAttribute('d') || '').length > 20);
      return texts.includes('v1') && texts.includes('v2') && lines.length >= 4
        ? {{texts: texts, lines: lines.length}} : null;
    }})()""", timeout=60)
    assert "messages scored (count)" in chart["texts"]
    assert any(t.startswith("RMSE: cumulative and rolling") for t in chart["texts"])
    assert chart["lines"] >= 4  # v1 and v2, cumulative and rolling

    # Data keeps flowing: a new version shows up in the same page, without a reload.
    browser.evaluate("window.__kappamlMarker = 'same page'")
    pipe.learn(rows[:100], version="v3", spec="rls", start_ts=now - 30_000)
    browser.wait_for(f"""(() => {{
      const svg = {RMSE_SVG};
      return svg && Array.from(svg.querySelectorAll('text')).some(t => t.textContent === 'v3');
    }})()""", timeout=30)
    assert browser.evaluate("window.__kappamlMarker") == "same page"

    # Drift detections become red rules on the RMSE chart, live too.
    writer = LifecycleWriter(kafka_settings, topics)
    writer.drifts([drift_record(GLOBAL_KEY, learned=n, ts=now - 60_000 + n * 100, error_before=3.0,
                                error_after=8.0) for n in (120, 260)])
    browser.wait_for(f"""(() => {{
      const svg = {RMSE_SVG};
      return svg && svg.querySelectorAll('.mark-rule.role-mark line').length === 2;
    }})()""", timeout=30)
    time.sleep(1.5)  # let the entry animation of the new line finish before the picture
    SHOTS.mkdir(parents=True, exist_ok=True)
    shot = browser.screenshot(SHOTS / "evaluation.png")
    assert shot.stat().st_size > 10_000

    # The comparison page draws every spec and the promotions.
    specs = {"rls": SpecFigures(300, 9.0, 7.0, 8.0, 6.0, role="champion"),
             "linear": SpecFigures(300, 8.0, 6.0, 7.0, 5.0)}
    writer.metrics([comparison_record(now - 5_000 + i * 1000, specs) for i in range(4)]
                   + [promotion_record("linear", "rls", p, 300, now - 2_500) for p in (0, 1)])
    browser.goto(f"{streamlit_app}/comparison")
    chart = browser.wait_for("""(() => {
      const svg = Array.from(document.querySelectorAll('.vega-embed svg')).find(s =>
        Array.from(s.querySelectorAll('text')).some(t => t.textContent.startsWith('Rolling RMSE of each')));
      if (!svg) return null;
      const texts = Array.from(svg.querySelectorAll('text')).map(t => t.textContent);
      const rules = svg.querySelectorAll('.mark-rule.role-mark line').length;
      return texts.includes('rls') && texts.includes('linear') && rules === 2 ? {rules: rules} : null;
    })()""", timeout=60)
    assert chart["rules"] == 2
    time.sleep(1.5)
    browser.screenshot(SHOTS / "comparison.png")


def test_a_browser_event_source_receives_the_predictions_feed(
        browser: Browser, kafka_settings: KafkaSettings, topics: Topics, tmp_path: Path) -> None:
    pipe = Pipeline(kafka_settings, topics, builtin("co2"))
    rows = synthetic_rows(60)
    pipe.learn(rows[:40])
    port = free_port()
    log = tmp_path / "feeds.log"
    proc = start("ui", ["feeds", "--port", str(port), "--bootstrap", kafka_settings.bootstrap_servers,
                        "--topic-prefix", topics.prefix], log)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/health", timeout=60, proc=proc, log=log)
        browser.goto(f"{url}/?feed=predictions&from=beginning")
        browser.wait_for("document.querySelectorAll('li.event').length === 40", timeout=30)
        assert browser.evaluate("document.getElementById('status').textContent") == "open"
        ids = browser.evaluate("Array.from(document.querySelectorAll('li.event'))"
                               ".map(li => JSON.parse(li.textContent).id)")
        assert sorted(ids) == list(range(1, 41))
        last_id = browser.evaluate("document.getElementById('last-id').textContent")
        assert last_id == browser.evaluate("document.querySelector('li.event').dataset.id")

        # New predictions arrive in the open page, live.
        pipe.learn(rows[40:60], version="v9")
        browser.wait_for("document.querySelectorAll('li.event').length === 60", timeout=30)
        newest = json.loads(browser.evaluate("document.querySelector('li.event').textContent"))
        assert newest["version"] == "v9"
    finally:
        stop(proc, timeout=15)


# The SVG of a chart by the start of its title.
CHART_SVG = """((title) => Array.from(document.querySelectorAll('.vega-embed svg')).find(svg =>
  Array.from(svg.querySelectorAll('text')).some(t => t.textContent.startsWith(title))) || null)"""


def test_delayed_labels_draw_on_the_evaluation_and_predictions_pages(
        streamlit_app: str, browser: Browser, kafka_settings: KafkaSettings, topics: Topics) -> None:
    run = delayed_run(builtin("co2"), synthetic_rows(300), delay=30, drop={20, 21, 100, 200}, ttl="120",
                      on_missing="drop", ts0=int(time.time() * 1000) - 60_000)
    Pipeline(kafka_settings, topics, builtin("co2")).write(run)
    browser.goto(streamlit_app)
    for title in ("Served predictions waiting for their label", "Label delay: p50",
                  "Label delay of the newest labelled"):
        browser.wait_for(f"""(() => {{
          const svg = {CHART_SVG}({json.dumps(title)});
          return svg && svg.querySelectorAll('.mark-line path, .mark-rect path').length > 0;
        }})()""", timeout=90)
    browser.evaluate("""(() => { const h = Array.from(document.querySelectorAll('h3'))
      .find(e => e.textContent.startsWith('Delayed labels')); h && h.scrollIntoView(); })()""")
    time.sleep(1.5)
    SHOTS.mkdir(parents=True, exist_ok=True)
    assert browser.screenshot(SHOTS / "evaluation-delayed.png").stat().st_size > 10_000
    browser.goto(f"{streamlit_app}/predictions")
    browser.wait_for("""document.body.innerText.includes('Waiting for their label')
      && document.querySelectorAll('[data-testid="stDataFrame"] canvas').length >= 2""", timeout=60)
    time.sleep(2)
    browser.evaluate("""(() => { const h = Array.from(document.querySelectorAll('h3'))
      .find(e => e.textContent.startsWith('Served predictions')); h && h.scrollIntoView(); })()""")
    time.sleep(1.5)
    assert browser.screenshot(SHOTS / "predictions-delayed.png").stat().st_size > 10_000
