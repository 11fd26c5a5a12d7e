"""Which dtypes travel through an arena (numeric and bool; never object or
structured), with a small cache: the hot paths see a handful of dtypes."""
from __future__ import annotations

from .. import _errors as errors

_numpy = None


def np():
    global _numpy
    if _numpy is None:
        import numpy
        _numpy = numpy
    return _numpy


plain_dtypes: dict = {}  # dtype specs seen in handles and loans -> their dtype


def plain_dtype(spec):
    """The dtype of a handle or a loan: numeric or bool, never object or structured
    (cached: the hot paths see a handful of dtypes)."""
    try:
        dtype = np().dtype(spec)
    except (TypeError, ValueError):
        raise errors.MalformedMessage(f"a malformed array handle (dtype {spec!r})") from None
    if dtype.hasobject or dtype.fields is not None or not dtype.itemsize:
        raise errors.MalformedMessage(f"an array handle of dtype {dtype} (only numeric and bool arrays travel)")
    try:
        if len(plain_dtypes) < 256:
            plain_dtypes[spec] = dtype
    except TypeError:  # an unhashable spec
        pass
    return dtype


def loanable(spec):
    """The dtype of a loan: numeric or bool (cached with the handles' dtypes)."""
    try:
        return plain_dtype(spec)
    except errors.EtherError:
        raise TypeError(f"cannot loan an array of dtype {spec!r}: use a numeric or bool dtype") from None
