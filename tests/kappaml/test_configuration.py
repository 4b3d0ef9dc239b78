"""Every KAPPAML_* variable the code reads is in docs/configuration.md (generated from kappaml/envvars.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kappaml.envvars import ALIASES, VARIABLES, getenv, render
from kappaml.kafka import KafkaSettings

REPO = Path(__file__).resolve().parents[2]
FOLDERS = ("api", "infra", "kappaml", "producer", "processor", "spark_batch", "ui", "bench", "tests")
# A complete name (not a prefix completed at run time, f"KAPPAML_KAFKA_{name}", or KAPPAML_KAFKA_*).
NAME = re.compile(r"KAPPAML_[A-Z0-9_]*[A-Z0-9](?![A-Z0-9_]*[{*])")
# producer/settings.py's env_default(env, "SSE_PORT", ...) reads KAPPAML_SSE_PORT.
SHORT = re.compile(r"env_(?:default|optional)\(env, \"([A-Z0-9_]+)\"")


def read_in_code() -> set[str]:
    names: set[str] = set()
    files = [p for folder in FOLDERS for p in (REPO / folder).rglob("*.py")] + [REPO / "Makefile"]
    for path in files:
        if path.name == "envvars.py" or path == Path(__file__):
            continue
        text = path.read_text(encoding="utf-8")
        names |= set(NAME.findall(text))
        names |= {f"KAPPAML_{short}" for short in SHORT.findall(text)}
    # KafkaSettings.from_env reads one variable per field.
    names |= {f"KAPPAML_KAFKA_{field.upper()}" for field in KafkaSettings.__dataclass_fields__}
    return names


def test_every_variable_read_is_documented():
    documented = {v.name for v in VARIABLES} | set(ALIASES)
    missing = sorted(read_in_code() - documented)
    assert not missing, f"document in kappaml/envvars.py, then python -m kappaml.envvars --write: {missing}"


def test_every_documented_variable_is_read():
    stale = sorted({v.name for v in VARIABLES} - read_in_code())
    assert not stale, f"documented but read nowhere: {stale}"


def test_the_page_is_generated_from_the_table():
    assert (REPO / "docs" / "configuration.md").read_text() == render(), (
        "docs/configuration.md is stale: python -m kappaml.envvars --write")


def test_the_scan_finds_what_it_must():
    found = read_in_code()
    assert {"KAPPAML_SSE_PORT", "KAPPAML_KAFKA_SASL_PASSWORD", "KAPPAML_DATASET_WAIT"} <= found
    assert "KAPPAML_KAFKA" not in found


def test_the_old_controller_port_name_still_works(caplog):
    assert getenv("KAPPAML_CONTROLLER_PORT", "9093", {}) == "9093"
    assert getenv("KAPPAML_CONTROLLER_PORT", "9093", {"KAPPAML_CONTROLLER_PORT": "1"}) == "1"
    assert getenv("KAPPAML_CONTROLLER_PORT", "9093", {"KAPPAML_BROKER_CONTROLLER_PORT": "2"}) == "2"
    both = {"KAPPAML_CONTROLLER_PORT": "1", "KAPPAML_BROKER_CONTROLLER_PORT": "2"}
    assert getenv("KAPPAML_CONTROLLER_PORT", "9093", both) == "1"


@pytest.mark.parametrize("name", ["KAPPAML_CONTROLLER_PORT", "KAPPAML_BROKER_CONTROLLER_PORT"])
def test_infra_reads_both_names(monkeypatch, name):
    from infra.__main__ import _parser

    monkeypatch.delenv("KAPPAML_CONTROLLER_PORT", raising=False)
    monkeypatch.delenv("KAPPAML_BROKER_CONTROLLER_PORT", raising=False)
    monkeypatch.setenv(name, "19093")
    assert _parser().parse_args(["status"]).controller_port == 19093
