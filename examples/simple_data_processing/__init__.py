"""The README's Quick Start: a generator, two processors and a collector."""
from .data_collector import DataCollector
from .data_generator import DataGenerator
from .data_processor import DataProcessor

__all__ = ["DataCollector", "DataGenerator", "DataProcessor"]
