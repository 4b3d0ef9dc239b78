"""A CSV that does not fit its declaration is reported, not silently dead-lettered row by row."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from producer_testkit import program, read_messages, write_csv

from infra.testing import free_port, wait_http
from kappaml.kafka import KafkaSettings
from kappaml.topics import Topics
from kappaml.validation import InvalidShare
from tests.conftest import REPO

TOML = """
name = "shops"
target = "sales"
features = [{ name = "price", kind = "numeric" }, { name = "promo", kind = "boolean" }]
"""


def _text_target_csv(tmp_path: Path, rows: int) -> Path:
    # The target column holds text in every row: every row is invalid.
    return write_csv(tmp_path / "text.csv", "price,promo,sales", [f"{i}.5,True,many" for i in range(rows)])


@pytest.mark.kafka
def test_ingest_warns_once_when_most_rows_are_invalid(kafka_settings: KafkaSettings, topics: Topics,
                                                     tmp_path: Path) -> None:
    declaration = tmp_path / "shops.toml"
    declaration.write_text(TOML)
    csv = _text_target_csv(tmp_path, 250)
    port = free_port()
    log = tmp_path / "run.log"
    with program("serve", "--csv", str(csv), "--dataset", str(declaration), "--port", str(port), log=log):
        wait_http(f"http://127.0.0.1:{port}/health")
        with program("ingest", "--url", f"http://127.0.0.1:{port}/events", "--bootstrap",
                     kafka_settings.bootstrap_servers, "--topic-prefix", topics.prefix,
                     "--state-dir", str(tmp_path / "state"), "--invalid-warn-rows", "100", log=log) as ingest:
            ingest.wait(90)
    assert len(read_messages(kafka_settings, topics.dlq)) == 250
    warnings = [json.loads(line) for line in log.read_text().splitlines()
                if line.startswith("{") and "most rows are invalid" in line]
    assert len(warnings) == 1, log.read_text()[-3000:]
    warning = warnings[0]
    # Decided after the read that reached 100 rows: the counts are those seen by then.
    n = warning["invalid"]
    assert warning["level"] == "warning" and warning["rows"] == n and 100 <= n <= 250
    assert warning["top_reasons"] == [f"sales: target is not a number ({n})"]


def test_invalid_share_is_decided_once_at_the_first_rows_or_the_end() -> None:
    share = InvalidShare(0.5, rows=10)
    for _ in range(4):
        share.add_invalid("x", "bad")
    assert not share.due(valid=5)  # 9 rows: not decided yet
    assert not share.due(valid=6)  # 10 rows, 4 invalid: no warning, and decided
    for _ in range(100):
        share.add_invalid("x", "bad")
    assert not share.due(valid=6, ended=True)
    short = InvalidShare(0.5, rows=100)
    short.add_invalid(None, "empty line")
    assert not short.due(valid=0) and short.due(valid=0, ended=True)  # a 1-row stream says so at its end
    with pytest.raises(ValueError):
        InvalidShare(1.5)


def _check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "producer", "serve", "--check", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def test_serve_check_prints_the_reasons_and_counts(tmp_path: Path) -> None:
    declaration = tmp_path / "shops.toml"
    declaration.write_text(TOML)
    lines = ["1.5,True,10", "abc,False,11", "2.5,maybe,12", "3.5,True,", "x,y,z", "4.5,False,13"]
    bad = _check("--csv", str(write_csv(tmp_path / "bad.csv", "price,promo,sales", lines)),
                 "--dataset", str(declaration))
    assert bad.returncode == 1, bad.stderr
    assert bad.stdout.splitlines()[1:] == [
        "    count  first row  column  reason",
        "        2          2  price   value is not a number",
        "        1          3  promo   not a boolean (True/False/1/0)",
        "        1          4  sales   missing target",
    ], bad.stdout
    assert "6 rows: 2 valid, 4 invalid" in bad.stdout.splitlines()[0]
    good = _check("--csv", str(write_csv(tmp_path / "good.csv", "price,promo,sales", ["1.5,True,10"])),
                  "--dataset", str(declaration))
    assert good.returncode == 0 and "1 rows: 1 valid, 0 invalid" in good.stdout
