"""Messages as a terminal or a JSON line shows them: arrays summarised (dtype,
shape, min, max, mean) unless asked in full, bytes by length, everything else
as JSON takes it; and `--field a.b` picks one part."""
from __future__ import annotations

import math

__all__ = ["plain", "pick", "FieldMissing"]


class FieldMissing(LookupError):
    pass


def _number(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def plain(value, *, full: bool = False):
    """`value` with arrays, bytes and other non-JSON values replaced."""
    if isinstance(value, dict):
        return {str(k): plain(v, full=full) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v, full=full) for v in value]
    if isinstance(value, (str, bool, int, type(None))):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"bytes": len(value)}
    if hasattr(value, "dtype") and hasattr(value, "shape"):  # a numpy array or scalar
        if getattr(value, "ndim", 0) == 0:
            return plain(value.item(), full=full)
        if full:
            return plain(value.tolist(), full=True)
        out = {"dtype": str(value.dtype), "shape": list(value.shape)}
        if value.size and value.dtype.kind in "biuf":
            out.update(min=_number(value.min()), max=_number(value.max()),
                       mean=_number(value.mean()))
        return out
    return repr(value)


def pick(message, field: str | None):
    """message's part at dotted path `field` ("a.b", "items.0"); raises
    FieldMissing naming the first step that is not there."""
    if not field:
        return message
    value = message
    for step in field.split("."):
        if isinstance(value, dict) and step in value:
            value = value[step]
        elif isinstance(value, (list, tuple)) and step.lstrip("-").isdigit() and -len(value) <= int(step) < len(value):
            value = value[int(step)]
        else:
            raise FieldMissing(f"the message has no field {field!r} (no {step!r})")
    return value
