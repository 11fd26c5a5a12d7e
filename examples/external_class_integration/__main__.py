"""Run from the project root:  .venv/bin/python -m examples.external_class_integration"""
import os

from ether import ether

config = os.path.join(os.path.dirname(__file__), "config", "registry.yaml")
ether.tap(config=config)
with ether.listen("processed_data", timeout=10) as results:
    ether.pub({"data": 21}, topic="DataGenerator.generate_data")  # the generator's default topic
    print(f"main: processed_data = {next(results)}")
ether.shutdown()
