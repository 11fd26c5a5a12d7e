"""Helpers for user code running with Ether. Only what the README promises lives
here; Ether's own helpers stay in their private modules."""
from ._runtime._logs import get_ether_logger as get_ether_logger

__all__ = ["get_ether_logger"]
