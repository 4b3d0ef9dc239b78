"""Property tests: whatever the CSV holds, the server streams on and reports each bad row.

The app runs in-process (Litestar's TestClient, an httpx client) so hundreds of files can be
served quickly: one app serves one path whose file is replaced per example (the table notices
the new inode and re-reads it). The events are parsed with httpx-sse.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from httpx_sse import connect_sse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient

from kappaml.csvsource import CsvTable
from kappaml.dataset import Dataset, Feature
from kappaml.records import extract
from producer.server import create_app

DS = Dataset(name="p", target="y",
             features=(Feature("a"), Feature("b", "boolean"), Feature("c", "categorical")))
HEADER = b"a,b,c,y\n"
GOOD = b"1.5,True,x,2\n"
NUMBER = re.compile(r"\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*")


class _Served:
    def __init__(self, directory: Path) -> None:
        self.path = directory / "data.csv"
        self.path.write_bytes(HEADER)
        self.client = TestClient(create_app(CsvTable(self.path, DS)))


_served: _Served | None = None


@pytest.fixture(scope="module", autouse=True)
def _app() -> Iterator[None]:
    global _served
    with tempfile.TemporaryDirectory(prefix="kappaml-props-") as directory:
        _served = _Served(Path(directory))
        with _served.client:
            yield
    _served = None


def serve(body: bytes) -> list:
    """All events of one full replay of a CSV with ``body`` (as bytes) under the header."""
    assert _served is not None
    tmp = _served.path.with_suffix(".tmp")
    tmp.write_bytes(HEADER + body)
    os.replace(tmp, _served.path)  # a new inode: the served table starts over
    with connect_sse(_served.client, "GET", "/events") as source:
        assert source.response.status_code == 200
        return [e for e in source.iter_sse() if e.event in ("record", "invalid", "end")]


def check_stream(events: list, n_lines: int) -> None:
    """Every line became exactly one record or invalid event, in order, then `end`."""
    assert events[-1].event == "end"
    body = events[:-1]
    assert [int(e.id) for e in body] == list(range(1, n_lines + 1))
    for event in body:
        payload = json.loads(event.data)
        if event.event == "record":
            extract(DS, payload)  # a record is always valid under the declaration
        else:
            assert payload["id"] == int(event.id) == payload["row"]
            assert isinstance(payload["reason"], str) and payload["reason"]


line_bytes = st.binary(max_size=80).filter(lambda b: b"\n" not in b)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(line_bytes)
def test_a_random_bytes_line_is_reported_and_the_stream_goes_on(junk: bytes) -> None:
    events = serve(GOOD + junk + b"\n" + GOOD)
    check_stream(events, 3)
    assert events[0].event == "record" and events[2].event == "record"
    middle = events[1]
    if middle.event == "record":  # only when the random bytes happen to be a valid row
        assert junk.count(b",") == 3
    else:
        assert middle.event == "invalid"


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_random_bytes_as_the_whole_body_never_break_the_stream(body: bytes) -> None:
    n_lines = body.count(b"\n") + (0 if body.endswith(b"\n") or not body else 1)
    check_stream(serve(body), n_lines)


field = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r"), max_size=8)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(field, min_size=0, max_size=7))
def test_random_rows_of_fields(fields: list[str]) -> None:
    line = ",".join(fields).encode()
    events = serve(line + b"\n")
    check_stream(events, 1)
    if len(fields) != 4:
        # A row of the wrong width (or an unparseable quote) is always an invalid event.
        assert events[0].event == "invalid"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=12).filter(lambda t: not NUMBER.fullmatch(t) and not any(c in t for c in '\n\r",')))
def test_a_non_numeric_target_is_always_invalid_and_named(target: str) -> None:
    events = serve(f"1,True,x,{target}\n".encode())
    assert events[0].event == "invalid"
    payload = json.loads(events[0].data)
    assert payload["column"] == "y" and payload["row"] == 1
    assert "target" in payload["reason"]
