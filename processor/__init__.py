"""The online-learning processor: a Quix Streams application over the raw topic."""

from processor.app import Processor
from processor.settings import ProcessorSettings

__all__ = ["Processor", "ProcessorSettings"]
