"""Every program's /metrics in a running pipeline (serve -> ingest -> Kafka -> processor -> feeds):
the counts it shows, and ``promtool check metrics`` on each."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from infra.testing import free_port, running, wait_http
from tests.observability.test_prometheus import needs_promtool, promtool_check_metrics, scrape, wait_for
from tests.producer.producer_testkit import read_messages

pytestmark = pytest.mark.kafka


def sample(text: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return None


def when(port: int, name: str, **labels: str) -> str | None:
    """The metrics text of ``port`` once the sample is above 0, else None."""
    text = scrape(port)
    return text if (sample(text, name, **labels) or 0) > 0 else None


@needs_promtool
def test_every_program_serves_metrics_that_promtool_accepts(kafka_settings, topics, tmp_path: Path) -> None:
    rows = 200
    sse, feeds = free_port(), free_port()
    m_serve, m_ingest, m_processor, m_feeds = (free_port() for _ in range(4))
    kafka = ("--bootstrap", kafka_settings.bootstrap_servers, "--topic-prefix", topics.prefix)
    log = tmp_path / "run.log"
    with (running("producer", "serve", "--port", str(sse), "--synthetic-rows", str(rows),
                  "--cache-dir", str(tmp_path / "cache"), "--metrics-port", str(m_serve), log=log),
          running("processor", *kafka, "--raw-partitions", str(topics.raw_partitions),
                  "--state-dir", str(tmp_path / "pstate"), "--commit-interval", "0.5",
                  "--metrics-port", str(m_processor), log=log) as processor,
          running("ui", "feeds", "--port", str(feeds), *kafka, "--metrics-port", str(m_feeds), log=log)):
        wait_http(f"http://127.0.0.1:{sse}/health")
        # Paced (40 rows/s), so the ingest is still running when its metrics are read.
        with running("producer", "ingest", "--url", f"http://127.0.0.1:{sse}/events?rate=40", *kafka,
                     "--raw-partitions", str(topics.raw_partitions), "--state-dir", str(tmp_path / "istate"),
                     "--commit-interval", "0.2", "--metrics-port", str(m_ingest), log=log) as ingest:
            text = wait_for("ingest rows", lambda: when(m_ingest, "kappaml_ingest_rows_total"))
            assert sample(text, "kappaml_ingest_reconnects_total") == 0
            promtool_check_metrics(text)
            served = scrape(m_serve)
            assert sample(served, "kappaml_serve_clients") == 1
            assert sample(served, "kappaml_serve_events_sent_total") > 0
            assert sample(served, "kappaml_serve_resumes_total") == 0
            promtool_check_metrics(served)
            assert ingest.wait(60) == 0, log.read_text()[-3000:]
        raw = len(read_messages(kafka_settings, topics.raw))
        assert 0 < raw <= rows

        def caught_up() -> str | None:
            text = scrape(m_processor)
            lags = [s.value for f in text_string_to_metric_families(text) for s in f.samples
                    if s.name == "kappaml_processor_consumer_lag_messages"]
            done = sample(text, "kappaml_processor_messages_total") == raw
            return text if done and len(lags) == topics.raw_partitions and not any(lags) else None

        # The ingest writes in transactions: the commit markers must not count as lag.
        text = wait_for("the processor to catch up, lag 0", caught_up)
        assert sample(text, "kappaml_processor_messages_learned_total") > 0
        promtool_check_metrics(text)

        # A feed client: the feed's gauge and counter move while it reads.
        seen: list[str] = []
        stop = threading.Event()

        def read_feed() -> None:
            url = f"http://127.0.0.1:{feeds}/streams/predictions?from=beginning"
            try:
                with httpx.stream("GET", url, timeout=30) as response:
                    for line in response.iter_lines():
                        if line.startswith("event: prediction"):
                            seen.append(line)
                        if stop.is_set():
                            return
            except httpx.HTTPError:
                return  # the feeds server stopped at the end of the test

        reader = threading.Thread(target=read_feed, daemon=True)
        reader.start()
        text = wait_for("a feed client", lambda: when(m_feeds, "kappaml_feeds_events_sent_total",
                                                      feed="prediction"))
        assert sample(text, "kappaml_feeds_clients", feed="prediction") == 1
        assert sample(text, "kappaml_feeds_clients", feed="drift") == 0
        promtool_check_metrics(text)
        stop.set()
        time.sleep(0.1)
        assert processor.poll() is None
