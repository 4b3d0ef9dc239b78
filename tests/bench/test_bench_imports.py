"""Every benchmark module imports: a benchmark is not in the test suite's runs, so a broken import
(a helper moved by a refactoring) would otherwise be found only by the next person running it."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import bench

# Plots (matplotlib) and the seed design (scikit-learn) need the benchmark extra: pip install -e '.[bench]'.
OPTIONAL = {"bench.report": "matplotlib", "bench.seed_job": "sklearn"}
MODULES = sorted(m.name for m in pkgutil.walk_packages(bench.__path__, "bench."))  # bench.cluster.* too


@pytest.mark.parametrize("name", MODULES)
def test_the_benchmark_module_imports(name: str) -> None:
    if name in OPTIONAL:
        pytest.importorskip(OPTIONAL[name])
    importlib.import_module(name)
