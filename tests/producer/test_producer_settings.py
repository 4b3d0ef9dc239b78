"""Settings from env + flags, data set declaration from flags, and the ingest's record-head parser."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kappaml.dataset import Dataset, Feature, builtin
from producer.__main__ import build_parser, main
from producer.ingest import stream_url
from producer.settings import IngestSettings, ServeSettings, dataset_from_args
from producer.source import _head


def parse(argv: list[str], env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return build_parser(env or {}).parse_args(argv)


def test_serve_defaults_to_the_synthetic_data(tmp_path: Path) -> None:
    s = ServeSettings.from_args(parse(["serve", "--cache-dir", str(tmp_path), "--synthetic-rows", "10"]))
    assert s.dataset.name == "co2-synthetic" and s.dataset.synthetic
    assert s.csv.parent == tmp_path and s.csv.exists()
    assert (s.host, s.port) == ("127.0.0.1", 8000)


def test_serve_with_a_csv_defaults_to_the_co2_declaration(tmp_path: Path) -> None:
    s = ServeSettings.from_args(parse(["serve", "--csv", "x.csv", "--port", "9999"]))
    assert s.dataset == builtin("co2") and s.csv == Path("x.csv") and s.port == 9999


def test_env_then_flags(tmp_path: Path) -> None:
    env = {"KAPPAML_SSE_PORT": "8123", "KAPPAML_SSE_MAX_CLIENTS": "5", "KAPPAML_CSV": "e.csv"}
    s = ServeSettings.from_args(parse(["serve"], env))
    assert (s.port, s.server.max_clients, s.csv) == (8123, 5, Path("e.csv"))
    s = ServeSettings.from_args(parse(["serve", "--port", "8124"], env))
    assert s.port == 8124


def test_a_declaration_from_flags() -> None:
    args = parse(["serve", "--csv", "d.csv", "--name", "shop", "--target", "sales", "--numeric", "price, qty",
                  "--categorical", "color", "--boolean", "promo", "--key", "store", "--id-column", "uid"])
    ds = dataset_from_args(args)
    assert ds == Dataset(name="shop", target="sales", key="store", id_column="uid", features=(
        Feature("price"), Feature("qty"), Feature("color", "categorical"), Feature("promo", "boolean")))
    with pytest.raises(ValueError, match="not both"):
        dataset_from_args(parse(["serve", "--dataset", "co2", "--target", "y", "--numeric", "a"]))
    with pytest.raises(ValueError, match="no feature"):
        dataset_from_args(parse(["serve", "--target", "y"]))


def test_dataset_without_csv_is_refused() -> None:
    with pytest.raises(ValueError, match="needs --csv"):
        ServeSettings.from_args(parse(["serve", "--dataset", "co2"]))


def test_ingest_settings() -> None:
    env = {"KAPPAML_TOPIC_PREFIX": "p1", "KAPPAML_KAFKA_BOOTSTRAP_SERVERS": "k:1", "KAPPAML_INGEST_RATE": "5"}
    s = IngestSettings.from_args(parse(["ingest"], env), env)
    assert s.topics.prefix == "p1" and s.topics.raw == "p1.raw"
    assert s.kafka.bootstrap_servers == "k:1" and s.rate == 5.0 and s.dataset is None
    s = IngestSettings.from_args(parse(["ingest", "--bootstrap", "b:2", "--topic-prefix", "q"], env), env)
    assert s.kafka.bootstrap_servers == "b:2" and s.topics.dlq == "q.dlq"
    bad_flags = (["--url", "ftp://x"], ["--commit-every", "0"], ["--rate", "-1"], ["--commit-interval", "-1"])
    for bad in bad_flags:
        with pytest.raises(ValueError):
            IngestSettings.from_args(parse(["ingest", *bad], env), env)
    # 0: commit after every read from the stream (the lowest-latency setting).
    s = IngestSettings.from_args(parse(["ingest", "--commit-interval", "0"], env), env)
    assert s.commit_interval == 0


def test_bad_configuration_exits_2(monkeypatch: pytest.MonkeyPatch) -> None:
    assert main(["serve", "--log-level", "LOUD"], env={}) == 2  # refused before configuring anything
    # Keep the session's logging set-up: main() would bind structlog to pytest's captured stream.
    monkeypatch.setattr("producer.__main__.configure_logging", lambda level: None)
    assert main(["serve", "--dataset", "co2"], env={}) == 2


def test_stream_url() -> None:
    assert stream_url("http://h/events", 0) == "http://h/events"
    assert stream_url("http://h/events", 250) == "http://h/events?rate=250"
    assert stream_url("http://h/events?rate=9&loop=true", 250) == "http://h/events?rate=9&loop=true"


ids = st.integers(min_value=0, max_value=2**53) | st.text(min_size=1, max_size=20)


@settings(max_examples=300, deadline=None)
@given(ids, st.text(min_size=1, max_size=20), st.none() | st.integers(min_value=0, max_value=2**60))
def test_record_head_parser_agrees_with_json(record_id, key: str, ts) -> None:  # type: ignore[no-untyped-def]
    body = {"id": record_id, "key": key, "ts": ts, "source": "s", "row": {"a": 1.0}}
    for ensure_ascii in (False, True):
        data = json.dumps(body, separators=(",", ":"), ensure_ascii=ensure_ascii)
        assert _head(data) == (key, str(record_id), ts)
    # Any other layout takes the full-parse path and agrees too.
    spaced = json.dumps(body)
    assert _head(spaced) == (key, str(record_id), ts)


@pytest.mark.parametrize("data", ["", "[]", "{}", '{"id":true,"key":"k"}', '{"id":1,"key":2}',
                                  '{"id":1,"key":"k","ts":"x"}', "not json"])
def test_record_head_parser_rejects(data: str) -> None:
    with pytest.raises((ValueError, KeyError, TypeError)):
        _head(data)
