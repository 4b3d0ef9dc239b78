"""Where kappaml keeps files: every program's defaults follow ``KAPPAML_DATA_DIR`` / ``KAPPAML_CACHE_DIR``.

* data (``KAPPAML_DATA_DIR``, default ``.kappaml``): the local broker, the logs of ``make run``,
  replay reports, and the state of the ingest and the processor (``<data>/state``, or
  ``KAPPAML_STATE_DIR``);
* cache (``KAPPAML_CACHE_DIR``, default ``$XDG_CACHE_HOME/kappaml`` or ``~/.cache/kappaml``):
  what can be made again, resolved jars and the generated synthetic CSV.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

__all__ = ["cache_dir", "data_dir", "state_dir"]


def data_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    return Path(env.get("KAPPAML_DATA_DIR") or ".kappaml")


def state_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    return Path(env.get("KAPPAML_STATE_DIR") or data_dir(env) / "state")


def cache_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    base = env.get("KAPPAML_CACHE_DIR") or os.path.join(
        env.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "kappaml")
    return Path(base)
