"""Fixtures of every UI test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import streamlit as st


@pytest.fixture(autouse=True)
def _release_readers() -> Iterator[None]:
    yield
    # Stops the background readers a test started (their on_release closes them).
    st.cache_resource.clear()
