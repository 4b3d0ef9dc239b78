"""The online-learning processor: a Quix Streams application over the raw topic."""

import kappaml  # noqa: F401 - first: it silences a dependency's warning before Quix imports it
from processor.app import Processor
from processor.settings import ProcessorSettings

__all__ = ["Processor", "ProcessorSettings"]
