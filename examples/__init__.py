"""Runnable examples (a package, so class paths like examples.simple_data_processing.X import)."""
