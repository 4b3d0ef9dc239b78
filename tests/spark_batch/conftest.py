"""Fixtures shared by the replay tests."""

from __future__ import annotations

import pytest
from replay_support import FLEET_TOML

from kappaml.dataset import Dataset


@pytest.fixture
def fleet(tmp_path) -> Dataset:
    """The keyed test data set (a key column, a categorical feature) declared in FLEET_TOML."""
    path = tmp_path / "fleet.toml"
    path.write_text(FLEET_TOML)
    return Dataset.from_toml(path)
