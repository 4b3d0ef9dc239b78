"""Streamlit glue shared by the pages: settings, the cached reader, status and empty-state messages."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import streamlit as st

from kappaml.dataset import Dataset
from kappaml.logging import configure_logging
from ui.reader import LiveReader
from ui.settings import UISettings, script_overrides
from ui.store import StoreView

__all__ = ["dataset", "explain_no_data", "reader", "ready", "settings", "sidebar"]


@st.cache_resource(show_spinner=False)
def _configure_logging_once() -> bool:
    configure_logging(os.environ.get("KAPPAML_LOG_LEVEL", "INFO"))
    return True


def _script_args() -> list[str]:
    # Only under ``streamlit run ui/app.py -- ...``: in tests sys.argv is pytest's.
    return sys.argv[1:] if sys.argv and Path(sys.argv[0]).name == "app.py" else []


def settings() -> UISettings:
    """The settings from the environment (and script arguments); a bad value stops the page."""
    _configure_logging_once()
    try:
        return UISettings.from_env({**os.environ, **script_overrides(_script_args())})
    except ValueError as exc:
        st.error(f"**Invalid UI configuration:** {exc}. Check the `KAPPAML_*` environment variables "
                 "(or the arguments after `--` of `streamlit run ui/app.py`).")
        st.stop()
        raise  # unreachable: st.stop() raises; keeps type checkers honest


@st.cache_data(show_spinner=False, ttl=60)
def _dataset(identity: str, _settings: UISettings) -> Dataset:
    # Errors are not cached: a log without a declaration yet is asked again on the next run.
    return _settings.dataset()


def _first_look(s: UISettings, wait: float = 5.0) -> StoreView:
    """The reader's view once it looked at the cluster at least once (or after ``wait`` s)."""
    v = view(s)
    deadline = time.monotonic() + wait
    while v.status.checked_at == 0.0 and time.monotonic() < deadline:
        time.sleep(0.1)  # the reader's first look at the cluster takes a moment
        v = view(s)
    return v


def _is_synthetic(s: UISettings) -> bool:
    """Whether the log's declaration is a synthetic data set (False while none can be read)."""
    if not _first_look(s).status.connected:
        # Reading the declaration would wait for Kafka's connection timeout (30 s) on every
        # page run; the page says Kafka is down, and this is asked again when it is back.
        return False
    try:
        return _dataset(repr(s), s).synthetic
    except Exception:  # the pages say what is wrong with the declaration
        return False


@st.fragment(run_every=3)
def _rerun_when_resolved(s: UISettings) -> None:
    """The page again, once Kafka answers and the data set resolves (pages are not fragments)."""
    if view(s).status.connected:
        try:
            _dataset(repr(s), s)
        except Exception:  # not yet: try again at the next tick
            return
        st.rerun()


def dataset(s: UISettings) -> Dataset:
    """The data set the log declares (``KAPPAML_DATASET`` must agree with it)."""
    v = _first_look(s)
    if not v.status.connected:
        ready(v, s)  # says that Kafka is not reachable
        _rerun_when_resolved(s)
        st.stop()
    try:
        return _dataset(repr(s), s)
    except Exception as exc:  # a DatasetError or Kafka's own: said on the page
        st.warning(f"**No usable data set declaration:** {exc}. The ingest declares its data set in "
                   f"`{s.topics.datasets}`; `KAPPAML_DATASET` (or `--dataset`) must agree with it.")
        _rerun_when_resolved(s)
        st.stop()
        raise


def _release(reader: LiveReader) -> None:
    reader.close()


@st.cache_resource(show_spinner=False, on_release=_release)
def _reader(identity: str, _settings: UISettings) -> LiveReader:
    # ``identity`` (the settings' repr) is the cache key: one reader per configuration,
    # shared by every session and page of this Streamlit server.
    return LiveReader(_settings).start()


def reader(s: UISettings) -> LiveReader:
    return _reader(repr(s), s)


def view(s: UISettings) -> StoreView:
    return reader(s).store.view()


def ready(v: StoreView, s: UISettings) -> bool:
    """Show why there is nothing to see (Kafka down, still connecting); True when the page can render."""
    status = v.status
    bootstrap = s.kafka.bootstrap_servers
    if status.checked_at == 0.0:
        st.info(f"Connecting to Kafka at `{bootstrap}`…")
        return False
    if not status.connected:
        st.error(
            f"**Kafka is not reachable** at `{bootstrap}` ({status.error}).\n\n"
            "Start it with `make run` (the whole pipeline) or `python -m infra up` (the broker only). "
            "This page keeps checking every second and shows the data again as soon as Kafka is back."
        )
        return False
    if status.missing_topics:
        missing = ", ".join(f"`{t}`" for t in status.missing_topics)
        st.warning(
            f"Topics not created yet on `{bootstrap}`: {missing}. They appear when the pipeline "
            "starts (`make run`, or `python -m infra up` which provisions them)."
        )
    if not v.loaded:
        st.info("Reading the topics…")
        return False
    return True


def explain_no_data(s: UISettings, what: str) -> None:
    """The empty state: what to start so that ``what`` appears."""
    t = s.topics
    st.info(
        f"**No {what} yet.** This UI reads `{t.predictions}`, `{t.metrics}`, `{t.drift}`, `{t.models}` "
        f"and `{t.dlq}` "
        f"on Kafka at `{s.kafka.bootstrap_servers}` (prefix from `KAPPAML_TOPIC_PREFIX`).\n\n"
        "To produce data, start the pipeline:\n"
        "- everything at once: `make run`\n"
        "- or step by step: `python -m infra up` (Kafka), `python -m producer serve` (CSV as SSE), "
        "`python -m producer ingest` (SSE into the raw topic), `python -m processor` (predict, learn, "
        "publish metrics and model snapshots).\n\n"
        "This page refreshes by itself once data arrives."
    )


def sidebar(s: UISettings) -> None:
    """Settings and a live connection line (its own fragment, so it refreshes with the status)."""
    st.sidebar.markdown(
        f"**Kafka** `{s.kafka.bootstrap_servers}`  \n**Topic prefix** `{s.prefix}`  \n"
        f"**Dataset** `{s.dataset_name or 'from the log'}`"
    )
    st.sidebar.caption("Set with KAPPAML_KAFKA_BOOTSTRAP_SERVERS, KAPPAML_TOPIC_PREFIX, KAPPAML_DATASET.")
    if _is_synthetic(s):
        st.sidebar.warning("**Synthetic data**: rows generated by `kappaml/synthetic.py`, not real "
                           'measurements. Replay a real CSV with `make run ARGS="--csv PATH"`.')
    with st.sidebar:
        _connection_line(s)


@st.fragment(run_every=2)
def _connection_line(s: UISettings) -> None:
    status = reader(s).store.status()
    if status.checked_at == 0.0:
        st.caption("Kafka: connecting…")
    elif status.connected:
        st.caption("Kafka: connected")
    else:
        st.caption("Kafka: **not reachable**, retrying")
