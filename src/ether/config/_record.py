"""The ``record:`` section's model (built when first needed, as _bridge.py's)."""
from __future__ import annotations

from pydantic import field_validator, model_validator

from . import RECORDER_CLASS, EtherInstanceConfig, _Strict, check_name

__all__ = ["RecordConfig"]


class RecordConfig(_Strict):
    """``record:``: record topics of the session into MCAP files in ``output``.

    ``topics`` are topics or patterns (``"sensors/*"``); ``all: true`` records
    every user topic and Ether's own (``ether/log``, ``ether/trial``, ...);
    ``exclude`` patterns are left out. ``policy: block`` (the default) slows
    publishers down rather than lose a message; ``drop`` loses them instead and
    counts the losses into the file. Files split by ``split_size`` bytes,
    ``split_duration_s`` seconds, or at every trial (``split_on_trial``)."""

    output: str = "recordings"
    topics: list[str] = []
    all: bool = False
    exclude: list[str] = []
    policy: str = "block"
    timeout_s: float = 60.0
    name: str = "recorder"
    compression: str = "none"
    flush_interval_s: float = 0.1
    fsync_interval_s: float = 1.0
    split_size: int | None = None
    split_duration_s: float | None = None
    split_on_trial: bool = False

    @field_validator("policy")
    @classmethod
    def _policy(cls, v: str) -> str:
        if v not in ("block", "drop"):
            raise ValueError(f"policy must be 'block' or 'drop', not {v!r}")
        return v

    @field_validator("compression")
    @classmethod
    def _compression(cls, v: str) -> str:
        if v not in ("none", "lz4", "zstd"):
            raise ValueError(f"compression must be 'none', 'lz4' or 'zstd', not {v!r}")
        return v

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return check_name(v, "name")

    @field_validator("timeout_s", "flush_interval_s", "fsync_interval_s", "split_duration_s")
    @classmethod
    def _seconds(cls, v: float | None) -> float | None:
        if v is not None and (not v > 0 or v == float("inf")):
            raise ValueError(f"must be a finite number of seconds > 0, not {v!r}")
        return v

    @field_validator("split_size")
    @classmethod
    def _size(cls, v: int | None) -> int | None:
        if v is not None and v < 4096:
            raise ValueError(f"split_size must be at least 4096 bytes, not {v!r}")
        return v

    @model_validator(mode="after")
    def _something(self) -> "RecordConfig":
        if not self.topics and not self.all:
            raise ValueError("name topics (or patterns) to record, or set all: true")
        return self

    def instance(self) -> EtherInstanceConfig:
        """The recorder as an instance of the session."""
        kwargs = self.model_dump()
        kwargs.pop("name")
        return EtherInstanceConfig(class_path=RECORDER_CLASS, kwargs=kwargs)
