"""Import a configured class by its dotted path, turning every failure into a
ConfigError that names the instance and the cause."""
from __future__ import annotations

import importlib
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager

from .._errors import ConfigError
from ..config import check_class_path

__all__ = ["import_class"]

_SHOWN_PATH = 3  # entries of the search path quoted in a "not found" message


def import_class(class_path: str, *, search_path: list[str] | None = None,
                 instance: str | None = None) -> type:
    """The class at ``module.sub.ClassName``, importing its module as the main script
    would: with ``search_path`` entries (e.g. the script's directory) put first."""
    where = f"instance {instance!r}: " if instance else ""
    try:
        check_class_path(class_path)
    except ValueError as e:
        raise ConfigError(where + str(e)) from None
    module_name, _, attr = class_path.rpartition(".")
    with _search_path(search_path or []):
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name and (module_name + ".").startswith(e.name + "."):
                head = sys.path[:_SHOWN_PATH]
                more = ", ..." if len(sys.path) > _SHOWN_PATH else ""
                raise ConfigError(
                    f"{where}module {module_name!r} not found for class_path {class_path!r} "
                    f"(no module {e.name!r}; search path: {head!r}{more})") from None
            raise ConfigError(where + _raised(module_name, e)) from e
        except (Exception, SystemExit) as e:
            # SystemExit too: a module that exits on import must not end the launcher.
            raise ConfigError(where + _raised(module_name, e)) from e
    try:
        cls = getattr(module, attr)
    except AttributeError:
        import difflib  # only for the error: a millisecond of import at every tap otherwise
        close = difflib.get_close_matches(attr, [n for n in dir(module) if not n.startswith("_")], 3)
        hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
        raise ConfigError(f"{where}module {module_name!r} has no class {attr!r}{hint}") from None
    if not isinstance(cls, type):
        raise ConfigError(f"{where}{class_path!r} is a {type(cls).__name__}, not a class")
    return cls


def _raised(module_name: str, e: BaseException) -> str:
    frames = traceback.extract_tb(e.__traceback__)
    at = f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
    return f"importing module {module_name!r} raised {type(e).__name__}: {e}{at}"


@contextmanager
def _search_path(entries: list[str]) -> Iterator[None]:
    added = [p for p in dict.fromkeys(map(str, entries)) if p not in sys.path]
    sys.path[:0] = added
    if added:
        importlib.invalidate_caches()  # directories may have gained files since startup
    try:
        yield
    finally:
        for p in added:
            try:
                sys.path.remove(p)
            except ValueError:  # the imported module removed it itself
                pass
