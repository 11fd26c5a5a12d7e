"""The README's Quick Start. From the project root:

    .venv/bin/python -m examples.simple_data_processing
"""
import os
import time

from ether import ether
from examples.simple_data_processing import DataCollector, DataGenerator, DataProcessor


# Get path to config file
def _get_config_path(config_name: str) -> str:
    return os.path.join(os.path.dirname(__file__), "config", f"{config_name}.yaml")


# Tap in to the ether with config
config_path = _get_config_path("dual_processors")
ether.tap(config=config_path)

# Start the distributed system
ether.start()
time.sleep(1.0)  # Let the system run for a bit (the user's choice, as in the README)

# Shut down the distributed system
ether.shutdown()

print("\n# Manual usage output after shutdown:")
# After shutdown, you can still use components normally in a single process
generator = DataGenerator()
processor2x = DataProcessor(multiplier=2)
processor4x = DataProcessor(multiplier=4)
collector = DataCollector()

# Manual usage example
generated_data = generator.generate_data(data=4242)
processed2x_result = processor2x.process_data(**generated_data)
processed4x_result = processor4x.process_data(**generated_data)
collector.collect_result(**processed2x_result)
collector.collect_result(**processed4x_result)
collector.summarize()
