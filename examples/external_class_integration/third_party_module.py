"""Stands for code you cannot or do not want to modify: no Ether import here."""
import os


class DataGenerator:
    def __init__(self, process_id: int = 0):
        self.process_id = process_id

    def generate_data(self, data: int = 42) -> dict:
        print(f"DataGenerator[PID {os.getpid()}]: Generating data - {data}")
        return {"data": data}


class DataProcessor:
    def __init__(self, multiplier: int = 2):
        self.multiplier = multiplier

    def process_data(self, data: int = 0) -> dict:
        result = data * self.multiplier
        print(f"DataProcessor[PID {os.getpid()}]: Processed {data} into {result}")
        return {"result": result}


class DataCollector:
    def collect_result(self, result: int) -> None:
        print(f"DataCollector[PID {os.getpid()}]: Collected result - {result}")
