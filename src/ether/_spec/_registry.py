"""The registry config: Ether decorators applied to classes that are not modified
(third-party code), by name, from the config's ``registry:`` section.

Applying a decorator only annotates the method's function object, in the process
that applies it: the main process (so tap can check the config, and forked
instances inherit it) and each instance (for other start methods).
"""
from __future__ import annotations

from . import _decorators
from .._errors import ConfigError
from ._importer import import_class

DECORATORS = {
    "ether_pub": _decorators.ether_pub,
    "ether_sub": _decorators.ether_sub,
    "ether_start": _decorators.ether_start,
    "ether_get": _decorators.ether_get,
    "ether_save": _decorators.ether_save,
    "ether_sync": _decorators.ether_sync,
}


def flatten(registry) -> tuple:
    """(class_path, method, decorator, kwargs) of every entry: picklable, for instances."""
    return tuple((class_path, method, name, kwargs)
                 for class_path, entry in registry.items()
                 for method, conf in entry.methods.items()
                 for name, kwargs in conf.decorators().items())


def apply(entries, *, search_path: list[str]) -> list:
    """Annotate the named methods; a missing class or method is a ConfigError.
    Returns what `undo` needs to take the annotations back."""
    undo_list = []
    try:
        _apply(entries, search_path, undo_list)
    except BaseException:
        undo(undo_list)  # all or nothing
        raise
    return undo_list


def _apply(entries, search_path: list[str], undo_list: list) -> None:
    for class_path, method, name, kwargs in entries:
        where = f"registry: {class_path}.{method}"
        cls = import_class(class_path, search_path=search_path, instance=None)
        attribute = cls.__dict__.get(method) if method in cls.__dict__ else getattr(cls, method, None)
        if attribute is None:
            methods = sorted(m for m in dir(cls) if not m.startswith("_") and callable(getattr(cls, m)))
            raise ConfigError(f"{where}: class {cls.__name__} has no method {method!r} "
                              f"(its methods: {', '.join(methods) or 'none'})")
        func = getattr(attribute, "__func__", attribute)
        if not callable(func):
            raise ConfigError(f"{where}: {method!r} is not a method")
        undo_list.append((func, _decorators.spec_of(func)))
        try:
            DECORATORS[name](**kwargs)(func)
        except (TypeError, ValueError) as exc:  # an unknown argument or a bad value
            raise ConfigError(f"{where}: {exc}") from None
        except AttributeError:
            raise ConfigError(f"{where}: {method!r} cannot be annotated (a built-in?)") from None


def undo(undo_list) -> None:
    """Give the annotated functions back the annotations they had before."""
    for func, previous in reversed(undo_list):
        if previous is None:
            if hasattr(func, "__dict__"):  # a built-in never got one
                vars(func).pop(_decorators.SPEC_ATTR, None)
        else:
            setattr(func, _decorators.SPEC_ATTR, previous)
