"""The kappaml UI: a Streamlit app (``streamlit run ui/app.py``) over a cached background
Kafka reader, and live SSE feeds of predictions and metrics (``python -m ui feeds``)."""

import kappaml  # noqa: F401, I001 - first: outside the venv it says so in one line
from ui.feeds import FeedConfig, create_feeds_app
from ui.position import Position, parse_position
from ui.reader import LiveReader, ReaderLimits
from ui.settings import UISettings
from ui.store import LiveStore, StoreView

__all__ = [
    "FeedConfig",
    "LiveReader",
    "LiveStore",
    "Position",
    "ReaderLimits",
    "StoreView",
    "UISettings",
    "create_feeds_app",
    "parse_position",
]
