"""Spark batch replay of the raw topic: rebuild every key's model exactly as the processor would."""

import kappaml  # noqa: F401, I001 - first: outside the venv it says so in one line
from spark_batch.connector import connector_jars, resolve_connector
from spark_batch.errors import ReplayError
from spark_batch.offsets import OffsetRange, pin_offsets
from spark_batch.settings import ReplaySettings, build_parser, parse_until, settings_from_args

__all__ = [
    "OffsetRange",
    "ReplayError",
    "ReplaySettings",
    "build_parser",
    "connector_jars",
    "parse_until",
    "pin_offsets",
    "resolve_connector",
    "settings_from_args",
]
