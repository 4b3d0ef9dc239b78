"""Every program's data, state and cache defaults follow KAPPAML_DATA_DIR / KAPPAML_CACHE_DIR."""

from __future__ import annotations

from pathlib import Path

from kappaml.paths import cache_dir, data_dir, state_dir


def test_defaults_and_overrides():
    assert data_dir({}) == Path(".kappaml") and state_dir({}) == Path(".kappaml/state")
    assert cache_dir({"XDG_CACHE_HOME": "/x"}) == Path("/x/kappaml")
    env = {"KAPPAML_DATA_DIR": "/d", "KAPPAML_CACHE_DIR": "/c"}
    assert (data_dir(env), state_dir(env), cache_dir(env)) == (Path("/d"), Path("/d/state"), Path("/c"))
    assert state_dir({**env, "KAPPAML_STATE_DIR": "/s"}) == Path("/s")


def test_every_program_follows_them(monkeypatch, tmp_path):
    from infra.classpath import default_cache_dir
    from processor.__main__ import _parser as processor_parser
    from producer.__main__ import build_parser as producer_parser

    env = {"KAPPAML_DATA_DIR": str(tmp_path / "data"), "KAPPAML_CACHE_DIR": str(tmp_path / "cache")}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    ingest = producer_parser(env).parse_args(["ingest"])
    assert Path(ingest.state_dir) == tmp_path / "data" / "state"
    serve = producer_parser(env).parse_args(["serve"])
    assert Path(serve.cache_dir) == tmp_path / "cache"
    assert processor_parser().parse_args([]).state_dir == tmp_path / "data" / "state"
    assert default_cache_dir() == tmp_path / "cache"
