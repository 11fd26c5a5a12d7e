"""The configuration models: which instances to launch and which decorators to apply
to third-party classes.

A config comes from a YAML file, a dict or Python objects, and every problem with it
is a :class:`ether.ConfigError` whose message names the file, the instance (or
registry entry) and the key, and says what is valid::

    config/x.yaml: instance 'generator1': unknown key 'clas_path' (valid: class_path, args, kwargs)
"""
from __future__ import annotations

import functools
import os
import re
from contextvars import ContextVar
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import (BaseModel, ConfigDict, PrivateAttr, ValidationError,
                      field_validator, model_validator)

from .._errors import ConfigError

__all__ = ["DECORATOR_KEYS", "ETHER_OPTIONS", "MAX_MESSAGE_BYTES", "SHUTDOWN_TIMEOUT_S",
           "BridgeConfig", "BridgeSecurityConfig", "EtherConfig", "EtherInstanceConfig",
           "RecordConfig", "RegistryClassConfig", "RegistryMethodConfig", "RESTART_POLICIES",
           "SUPERVISION_KEYS", "SecurityFiles", "SupervisionConfig", "check_security_files",
           "default_host_name", "is_loopback_endpoint"]

#: Keys of ``EtherInstanceConfig.kwargs`` that Ether consumes instead of the class.
ETHER_OPTIONS: dict[str, type] = {"ether_name": str}
#: Decorators the ``registry:`` section may apply to a method.
DECORATOR_KEYS = ("ether_pub", "ether_sub", "ether_start", "ether_get", "ether_save",
                  "ether_sync")

# Instance names appear in logs and file names, so they stay in a portable set.
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
# The main process logs to "session.log" in the session's log directory.
_RESERVED_NAMES = frozenset({".", "..", "session"})


def check_name(name: Any, what: str = "instance name") -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name in _RESERVED_NAMES:
        raise ValueError(
            f"{what} {name!r} is invalid: use 1-64 letters, digits, '_', '-' or '.' "
            f"(not {', '.join(repr(n) for n in sorted(_RESERVED_NAMES))})")
    return name


def check_class_path(path: Any, key: str = "class_path") -> str:
    parts = path.split(".") if isinstance(path, str) else []
    if len(parts) < 2 or not all(p.isidentifier() for p in parts):
        raise ValueError(f"{key} {path!r} is invalid: expected 'module.sub.ClassName'")
    return path


# Set while an outer call (a model's __init__, or _validate) will convert pydantic's
# ValidationError into a ConfigError.
_nested: ContextVar[bool] = ContextVar("ether_config_nested", default=False)


class _Strict(BaseModel):
    """Rejects unknown keys listing the valid ones, and raises ConfigError, not
    pydantic's ValidationError, when built directly."""

    model_config = ConfigDict(extra="forbid")

    def __init__(self, /, **data: Any) -> None:
        # pydantic calls a custom __init__ for nested models too; only the outermost
        # call converts, so the message keeps the full location.
        outer = not _nested.get()
        token = _nested.set(True)
        try:
            super().__init__(**data)
        except ValidationError as e:
            if not outer:
                raise
            raise ConfigError(_explain(e, None)) from None
        finally:
            _nested.reset(token)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            unknown = [k for k in data if k not in cls.model_fields]
            if unknown:
                keys = ", ".join(repr(k) for k in unknown)
                raise ValueError(f"unknown key{'s' if len(unknown) > 1 else ''} {keys} "
                                 f"(valid: {', '.join(cls.model_fields)})")
        return data


# ---------------------------------------------------------------------------
# supervision: restart policies and health (per instance, and session-wide)
# ---------------------------------------------------------------------------
#: What happens when an instance exits without being asked to.
RESTART_POLICIES = ("never", "on-failure", "always")
_ON_FAILURE = ("continue", "shutdown")


def _check_supervision(key: str, v: Any) -> Any:
    """One supervision key's value (None: not set here), or ValueError naming it."""
    if v is None:
        return v
    if key == "restart":
        if v not in RESTART_POLICIES:
            raise ValueError(f"restart {v!r} is invalid (valid: {', '.join(RESTART_POLICIES)})")
        return v
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v or v in (float("inf"), float("-inf")):
        raise ValueError(f"{key} must be a finite number, not {v!r}")
    lowest = {"max_restarts": 0, "restart_window_s": 0.001, "backoff_s": 0.0, "backoff_factor": 1.0,
              "backoff_max_s": 0.0, "stuck_after_s": 0.5, "health_interval_s": 0.2}[key]
    if key == "max_restarts" and not isinstance(v, int):
        raise ValueError(f"max_restarts must be a whole number >= 0, not {v!r}")
    if v < lowest:
        unit = "" if key in ("max_restarts", "backoff_factor") else " seconds"
        raise ValueError(f"{key} must be at least {lowest:g}{unit}, not {v!r}")
    return v


class SupervisionConfig(_Strict):
    """The session-wide ``supervision:`` section: every instance's default restart
    policy and health settings, and what the session does when an instance fails
    for good (``on_failure``: ``continue``, or ``shutdown`` in order, save_all
    included). An instance's own keys override these. See docs/design/lifecycle.md."""

    restart: str = "never"
    max_restarts: int = 5
    restart_window_s: float = 60.0
    backoff_s: float = 0.1
    backoff_factor: float = 2.0
    backoff_max_s: float = 10.0
    stuck_after_s: float | None = None       # off: no handler is ever judged stuck
    health_interval_s: float | None = None   # off: no health checks
    on_failure: str = "continue"

    @field_validator("*", mode="before")
    @classmethod
    def _supervision_value(cls, v: Any, info) -> Any:
        if info.field_name == "on_failure":
            if v not in _ON_FAILURE:
                raise ValueError(f"on_failure {v!r} is invalid (valid: {', '.join(_ON_FAILURE)})")
            return v
        if v is None and info.field_name not in ("stuck_after_s", "health_interval_s"):
            raise ValueError(f"{info.field_name} needs a value")
        return _check_supervision(info.field_name, v)

    @model_validator(mode="after")
    def _backoff_cap(self) -> "SupervisionConfig":
        if self.backoff_max_s < self.backoff_s:
            raise ValueError(f"backoff_max_s ({self.backoff_max_s:g}) is below backoff_s "
                             f"({self.backoff_s:g})")
        return self


#: The supervision keys an instance may set (all but on_failure).
SUPERVISION_KEYS = ("restart", "max_restarts", "restart_window_s", "backoff_s", "backoff_factor",
                    "backoff_max_s", "stuck_after_s", "health_interval_s")


class EtherInstanceConfig(_Strict):
    """One instance to launch in its own process: ``class_path(*args, **kwargs)``.

    Keys of ``kwargs`` starting with ``ether_`` are options for Ether (see
    ``ETHER_OPTIONS``) and are not passed to the class. The supervision keys
    (``restart``, ``max_restarts``, ...; see SupervisionConfig) override the
    session's ``supervision:`` section for this instance.
    """

    class_path: str
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    # Supervision, each None here: the session's `supervision:` value.
    restart: str | None = None               # never | on-failure | always
    max_restarts: int | None = None          # restarts allowed within restart_window_s ...
    restart_window_s: float | None = None    # ... past which the instance is marked failed
    backoff_s: float | None = None           # delay before the first restart in the window
    backoff_factor: float | None = None      # each further one waits this many times longer
    backoff_max_s: float | None = None       # but never longer than this
    stuck_after_s: float | None = None       # a handler that has not returned for this long
    health_interval_s: float | None = None   # how often @ether_health runs (and reports)
    # Where it runs: a host of the site (an `ether agent` runs there); None: this host.
    host: str | None = None

    @field_validator("host", mode="before")
    @classmethod
    def _host_name(cls, v: Any) -> Any:
        if v is not None and (not isinstance(v, str) or not _HOST.fullmatch(v)):
            raise ValueError(f"host {v!r} is invalid: a host name of the site "
                             "(1-64 letters, digits, '_' or '-')")
        return v

    @field_validator(*SUPERVISION_KEYS, mode="before")
    @classmethod
    def _supervision_value(cls, v: Any, info) -> Any:
        return _check_supervision(info.field_name, v)

    def supervision(self, defaults: "SupervisionConfig") -> "SupervisionConfig":
        """This instance's supervision settings: its own keys over `defaults`."""
        own = {k: getattr(self, k) for k in SUPERVISION_KEYS if k in self.model_fields_set}
        own = {k: v for k, v in own.items() if v is not None}
        if not own:
            return defaults
        merged = defaults.model_copy(update=own)
        if merged.backoff_max_s < merged.backoff_s:
            raise ConfigError(f"backoff_max_s ({merged.backoff_max_s:g}) is below backoff_s "
                              f"({merged.backoff_s:g})")
        return merged

    @field_validator("class_path", mode="before")
    @classmethod
    def _class_path(cls, v: Any) -> Any:
        return check_class_path(v)

    @field_validator("kwargs")
    @classmethod
    def _options(cls, v: dict[str, Any]) -> dict[str, Any]:
        for key, value in v.items():
            if not key.startswith("ether_"):
                continue
            if key not in ETHER_OPTIONS:
                raise ValueError(f"kwargs: unknown Ether option {key!r} "
                                 f"(valid: {', '.join(ETHER_OPTIONS)})")
            if key == "ether_name":
                check_name(value, "kwargs: ether_name")
        return v

    def class_kwargs(self) -> dict[str, Any]:
        """The keyword arguments passed to the class."""
        return {k: v for k, v in self.kwargs.items() if not k.startswith("ether_")}

    def ether_options(self) -> dict[str, Any]:
        """The ``ether_*`` options, for Ether itself."""
        return {k: v for k, v in self.kwargs.items() if k.startswith("ether_")}


class RegistryMethodConfig(_Strict):
    """Decorators to apply to one method: each value holds that decorator's keyword
    arguments. ``{}`` or null means defaults; an absent key means not applied."""

    ether_pub: dict[str, Any] | None = None
    ether_sub: dict[str, Any] | None = None
    ether_start: dict[str, Any] | None = None
    ether_get: dict[str, Any] | None = None
    ether_save: dict[str, Any] | None = None
    ether_sync: dict[str, Any] | None = None

    @model_validator(mode="before")
    @classmethod
    def _null_means_defaults(cls, data: Any) -> Any:
        # YAML's bare "ether_sub:" is null; the user means "with defaults".
        if isinstance(data, Mapping):
            return {k: ({} if v is None else v) for k, v in data.items()}
        return data

    @field_validator(*DECORATOR_KEYS)
    @classmethod
    def _arg_names(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        for key in v or ():
            if not key.isidentifier():
                raise ValueError(f"{key!r} is not a keyword argument name")
        return v

    def decorators(self) -> dict[str, dict[str, Any]]:
        """``{decorator name: keyword arguments}`` of the decorators to apply."""
        return {k: dict(v) for k in DECORATOR_KEYS if (v := getattr(self, k)) is not None}


class RegistryClassConfig(_Strict):
    """The methods of one third-party class to decorate through configuration.

    An entry for a class that no instance runs (nor a subclass of it) is an error
    at tap, because its decorators would change nothing; ``allow_unused: true``
    says that this is intended (a registry shared by several configs)."""

    methods: dict[str, RegistryMethodConfig] = {}
    allow_unused: bool = False

    @field_validator("methods")
    @classmethod
    def _method_names(cls, v: dict[str, RegistryMethodConfig]) -> dict[str, RegistryMethodConfig]:
        for name in v:
            if not name.isidentifier():
                raise ValueError(f"method name {name!r} is not a Python identifier")
        return v


# ---------------------------------------------------------------------------
# bridge: the link to other hosts (ether.bridge, the `remote` extra)
# ---------------------------------------------------------------------------
# Site and host names become key-expression chunks on the wire, so they may hold
# none of zenoh's metacharacters (* $ # ? /) and no '@' (name@host).
_SITE = re.compile(r"[A-Za-z0-9_-]{1,32}")
_HOST = re.compile(r"[A-Za-z0-9_-]{1,64}")
_ENDPOINT = re.compile(r"(tcp|tls)/(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):([0-9]{1,5})")
_LOOPBACK_HOSTS = ("localhost", "[::1]")
#: Default cap on one message between hosts (zenoh's own is 1 GiB).
MAX_MESSAGE_BYTES = 256 * 1024 * 1024


def default_host_name() -> str:
    """This machine's host name, made fit for a key expression."""
    import socket
    name = re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname().split(".")[0])[:64].strip("-")
    return name or "host"


def is_loopback_endpoint(endpoint: str) -> bool:
    match = _ENDPOINT.fullmatch(endpoint)
    if not match:
        return False
    host = match.group(2)
    return host in _LOOPBACK_HOSTS or host.startswith("127.")


# ---------------------------------------------------------------------------
# record: a recorder instance (ether.record), launched before every other one
# ---------------------------------------------------------------------------
#: The class a ``record:`` section runs, as the first instance of the session.
RECORDER_CLASS = "ether.record.Recorder"


#: How long ``ether.shutdown()`` waits, at most, for the instances to handle what
#: was published and to run their save_all, cleanup and shutdown handlers.
SHUTDOWN_TIMEOUT_S = 120.0


# The bridge and record sections' models live in _bridge.py and _record.py, built
# the first time a config has the section or someone names one (this module's
# __getattr__). EtherConfig's two fields are typed Any at run time (type checkers
# see the models) and validated by _section: pydantic puts a nested model's errors
# under the field's location, so messages still name `bridge: ...` and `record: ...`.
_LAZY = {"BridgeConfig": "_bridge", "BridgeSecurityConfig": "_bridge", "SecurityFiles": "_bridge",
         "check_security_files": "_bridge", "RecordConfig": "_record"}

if TYPE_CHECKING:
    from ._bridge import BridgeConfig, BridgeSecurityConfig, SecurityFiles, check_security_files
    from ._record import RecordConfig
    _BridgeSection = BridgeConfig | None
    _RecordSection = RecordConfig | None
else:
    _BridgeSection = _RecordSection = Any


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ether.config' has no attribute {name!r}")
    import importlib
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def _section(model: str, v: Any) -> Any:
    cls = __getattr__(model)
    if isinstance(v, cls):
        return v
    token = _nested.set(True)  # its errors join the outer model's, under the field's name
    try:
        return cls.model_validate(v)
    finally:
        _nested.reset(token)


class EtherConfig(_Strict):
    """A whole session: the instances to launch, the registry of decorators, and
    ``shutdown_timeout_s``: how long shutdown waits, at most, for the instances to
    handle what was published (as long as they make progress) and save (see
    ``ether.shutdown``)."""

    instances: dict[str, EtherInstanceConfig] = {}
    registry: dict[str, RegistryClassConfig] = {}
    shutdown_timeout_s: float = SHUTDOWN_TIMEOUT_S
    bridge: _BridgeSection = None      # a BridgeConfig (or None); see _section
    record: _RecordSection = None      # a RecordConfig (or None)
    supervision: SupervisionConfig = SupervisionConfig()
    _source: Path | None = PrivateAttr(default=None)

    @field_validator("shutdown_timeout_s")
    @classmethod
    def _positive(cls, v: float) -> float:
        if not v > 0 or v == float("inf"):
            raise ValueError(f"shutdown_timeout_s must be a finite number of seconds > 0, not {v!r}")
        return v

    @field_validator("instances")
    @classmethod
    def _instance_names(cls, v: dict[str, EtherInstanceConfig]) -> dict[str, EtherInstanceConfig]:
        for name in v:
            check_name(name)
        return v

    @field_validator("bridge", mode="before")
    @classmethod
    def _bridge(cls, v: Any) -> Any:
        # A bare `bridge:` in YAML is null: the section is there, so it means `bridge: {}`.
        return _section("BridgeConfig", {} if v is None else v)

    @field_validator("record", mode="before")
    @classmethod
    def _record(cls, v: Any) -> Any:
        return None if v is None else _section("RecordConfig", v)

    @model_validator(mode="after")
    def _hosts_need_a_bridge(self) -> "EtherConfig":
        for key, inst in self.instances.items():
            if inst.host is None:
                continue
            if self.bridge is None:
                raise ValueError(f"instance {key!r}: host {inst.host!r} needs a bridge: section "
                                 "(the launch goes through this host's bridge to the agent there)")
            security = self.bridge.security
            if security is not None and security.allow_hosts is not None and \
                    inst.host != self.bridge.host_name() and inst.host not in security.allow_hosts:
                raise ValueError(f"instance {key!r}: host {inst.host!r} is not a host of the site "
                                 f"(bridge: security: allow_hosts: {', '.join(security.allow_hosts)})")
        return self

    def remote_instances(self) -> dict[str, EtherInstanceConfig]:
        """The instances that run on another host than this one (their `host:`)."""
        if self.bridge is None:
            return {}
        here = self.bridge.host_name()
        return {k: i for k, i in self.instances.items() if i.host not in (None, here)}

    @field_validator("registry")
    @classmethod
    def _registry_paths(cls, v: dict[str, RegistryClassConfig]) -> dict[str, RegistryClassConfig]:
        for path in v:
            check_class_path(path, "registry class path")
        return v

    @property
    def source(self) -> Path | None:
        """The YAML file this config was read from, if any."""
        return self._source

    @property
    def folder(self) -> Path:
        """Where relative paths in the config (the bridge's certificates) start: the
        YAML file's folder, else the current directory."""
        return (self._source.parent if self._source is not None else Path.cwd()).absolute()

    def with_recorder(self) -> EtherConfig:
        """This config with its ``record:`` section as the first instance (itself
        if it has none)."""
        if self.record is None:
            return self
        name = self.record.name
        if name in self.instances:
            raise ConfigError(f"record: the recorder's name {name!r} is an instance's too; "
                              f"set record: name: to another")
        copy = self.model_copy(update={"instances": {name: self.record.instance(), **self.instances}})
        copy._source = self._source
        return copy

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str]) -> EtherConfig:
        label = os.fspath(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"{label}: config file not found "
                              f"(looked at {os.path.abspath(label)})") from None
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"{label}: cannot read config file: {e}") from None
        import yaml  # here: a config given as a dict never needs it
        try:
            data = yaml.load(text, Loader=_unique_key_loader())  # noqa: S506 (a SafeLoader)
        except yaml.YAMLError as e:
            raise ConfigError(f"{label}: {_yaml_problem(e, text)}") from None
        config = cls._validate(data, label)
        config._source = Path(path)
        return config

    @classmethod
    def load(cls, config: str | os.PathLike[str] | Mapping[str, Any] | EtherConfig) -> EtherConfig:
        """An EtherConfig from a YAML path, a dict, or an EtherConfig (returned as is)."""
        if isinstance(config, EtherConfig):
            return config
        if isinstance(config, (str, os.PathLike)):
            return cls.from_yaml(config)
        if isinstance(config, Mapping):
            return cls._validate(config, None)
        raise ConfigError("config must be a path to a YAML file, a dict or an EtherConfig, "
                          f"not {type(config).__name__}")

    @classmethod
    def _validate(cls, data: Any, label: str | None) -> EtherConfig:
        if data is None:  # an empty file: nothing to launch
            data = {}
        if not isinstance(data, Mapping):
            raise ConfigError(_prefix(label, "") + "expected a mapping with keys "
                              f"{', '.join(cls.model_fields)}, got {_kind(data)}")
        token = _nested.set(True)  # convert here, where the file name is known
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            raise ConfigError(_explain(e, label)) from None
        finally:
            _nested.reset(token)


@functools.cache
def _unique_key_loader() -> type:
    """A SafeLoader that rejects a repeated key instead of keeping the last one, so
    two instances cannot silently share a name."""
    import yaml

    # libyaml's parser where PyYAML was built with it (its wheels are): a tenth of
    # the pure-Python one's time; the constructor, and so the check below, is the same.
    class UniqueKeyLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
        def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
            # The keys written in this mapping; a merge (`<<: *base`) may bring keys
            # that they override, as YAML means it. An unhashable key is the
            # constructor's own error (with its line), not a TypeError from here.
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                if isinstance(key, (str, int, float, bool)):
                    if key in seen:
                        raise yaml.constructor.ConstructorError(
                            None, None, f"duplicate key {key!r}", key_node.start_mark)
                    seen.add(key)
            return super().construct_mapping(node, deep=deep)

    return UniqueKeyLoader


def _yaml_problem(e, text: str) -> str:  # a yaml.YAMLError, and the text it read
    mark = getattr(e, "problem_mark", None)
    problem = getattr(e, "problem", None) or str(e)
    if mark is None:
        return f"invalid YAML: {problem}"
    # libyaml's messages do not quote the character they stopped at; say which.
    lines = text.splitlines()
    if 0 <= mark.line < len(lines) and 0 <= mark.column < len(lines[mark.line]):
        char = lines[mark.line][mark.column]
        if char == "\t":
            problem += " (a tab: YAML indents with spaces)"
        elif not char.isspace():
            word = re.match(r"[^\s:,\[\]{}]+|\S", lines[mark.line][mark.column:]).group()[:40]
            if repr(word) not in problem:
                problem += f" (at {word!r})"
    return f"line {mark.line + 1}, column {mark.column + 1}: invalid YAML: {problem}"


# -- ValidationError -> one readable line per problem ------------------------------

_TYPE_WORDS = {"dict_type": "a mapping", "model_type": "a mapping",
               "model_attributes_type": "a mapping", "list_type": "a list",
               "string_type": "a string", "int_type": "an integer"}


def _explain(e: ValidationError, label: str | None) -> str:
    lines = [_explain_one(err, label) for err in e.errors(include_url=False)]
    return "\n".join(dict.fromkeys(lines))


def _explain_one(err: Any, label: str | None) -> str:
    loc, kind = tuple(err["loc"]), err["type"]
    if kind in ("missing", "extra_forbidden") and loc:
        where, problem = loc[:-1], ("missing required key" if kind == "missing"
                                    else "unknown key") + f" {loc[-1]!r}"
        return _prefix(label, _where(where)[0]) + problem
    place, rest = _where(loc)
    if kind in ("value_error", "assertion_error"):
        # Our validators name their subject; the key path would repeat it.
        return _prefix(label, place) + str(err.get("ctx", {}).get("error", err["msg"]))
    subject = "name" if rest[-1:] == ("[key]",) else (
        "key " + repr(".".join(str(p) for p in rest)) if rest else "")
    expected = _TYPE_WORDS.get(kind)
    problem = (f"expected {expected}, got {_kind(err.get('input'))}" if expected
               else err["msg"][:1].lower() + err["msg"][1:])
    return _prefix(label, place) + (f"{subject}: " if subject else "") + problem


def _where(loc: tuple[Any, ...]) -> tuple[str, tuple[Any, ...]]:
    """('instances', 'g1', 'args') -> ("instance 'g1'", ('args',))."""
    if loc[:1] == ("instances",) and len(loc) >= 2:
        return f"instance {loc[1]!r}", loc[2:]
    if loc[:1] == ("supervision",):
        return "supervision", loc[1:]
    if loc[:1] == ("registry",) and len(loc) >= 2:
        place = f"registry {loc[1]!r}"
        if loc[2:3] == ("methods",) and len(loc) >= 4:
            place += f": method {loc[3]!r}"
            if len(loc) >= 5 and loc[4] in DECORATOR_KEYS:
                return place + f": {loc[4]}", loc[5:]
            return place, loc[4:]
        return place, loc[2:]
    if loc[:1] == ("record",):
        return "record", loc[1:]
    if loc[:1] == ("bridge",):
        if loc[1:2] == ("security",):
            return "bridge: security", loc[2:]
        return "bridge", loc[1:]
    return "", loc


def _prefix(label: str | None, place: str) -> str:
    return "".join(f"{p}: " for p in (label, place) if p)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"
