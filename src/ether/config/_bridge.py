"""The ``bridge:`` section's models (ether.config's; see its docstring): built the
first time a config has the section, or someone names one (ether.config's module
``__getattr__``), not at every ``import ether.config``: each pydantic model costs
its schema's building (about 3.5 ms here), which every tap would pay for a
section most configs do not have."""
from __future__ import annotations

import os
import stat
from pathlib import Path

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from .._errors import ConfigError
from . import (_ENDPOINT, _HOST, _SITE, MAX_MESSAGE_BYTES, _Strict, default_host_name,
               is_loopback_endpoint)

__all__ = ["BridgeConfig", "BridgeSecurityConfig", "SecurityFiles", "check_security_files"]


class BridgeSecurityConfig(_Strict):
    """Mutual TLS with a site CA (``ether certs init SITE``, ``ether certs host NAME``).
    Relative paths are relative to the config file's folder."""

    ca: Path
    cert: Path
    key: Path
    allow_hosts: list[str] | None = None   # certificate names let in (zenoh ACL, default deny)
    verify_name: bool = True               # off for DHCP labs: still mTLS, identity by name
    # Certificate names that may launch instances through this host's `ether agent`
    # (docs/design/remote-launch.md); None: every name of allow_hosts.
    operators: list[str] | None = None

    @field_validator("allow_hosts", "operators")
    @classmethod
    def _hosts(cls, v: list[str] | None, info) -> list[str] | None:
        for host in v or ():
            if not isinstance(host, str) or not _HOST.fullmatch(host):
                raise ValueError(f"{info.field_name}: {host!r} is not a host name "
                                 "(1-64 letters, digits, '_' or '-')")
        return v

    @model_validator(mode="after")
    def _operators_are_let_in(self) -> "BridgeSecurityConfig":
        if self.operators is not None and self.allow_hosts is not None:
            out = [o for o in self.operators if o not in self.allow_hosts]
            if out:
                raise ValueError(f"operators: {', '.join(map(repr, out))} not in allow_hosts, "
                                 "so no such certificate can connect; add it to allow_hosts")
        return self

    def launchers(self) -> list[str] | None:
        """The certificate names that may launch here (operators, else allow_hosts)."""
        return self.operators if self.operators is not None else self.allow_hosts


class BridgeConfig(_Strict):
    """The bridge to other hosts. Its presence in a config starts one bridge process
    per host and session. Without ``listen``, ``connect`` or multicast discovery it
    listens on loopback only; anything beyond loopback requires ``security``."""

    site: str = "default"            # shared by every host of one experiment
    host: str | None = None          # default: the host name; unique in the site
    discovery: str = "none"          # multicast | none
    listen: list[str] = []
    connect: list[str] = []
    security: BridgeSecurityConfig | None = None
    export: list[str] = ["*"]        # local topics (patterns) that may leave this host
    lease_s: float = 3.0
    max_message_bytes: int = MAX_MESSAGE_BYTES

    @field_validator("site")
    @classmethod
    def _site(cls, v: str) -> str:
        if not isinstance(v, str) or not _SITE.fullmatch(v):
            raise ValueError(f"site {v!r} is invalid: use 1-32 letters, digits, '_' or '-'")
        return v

    @field_validator("host")
    @classmethod
    def _host(cls, v: str | None) -> str | None:
        if v is not None and (not isinstance(v, str) or not _HOST.fullmatch(v)):
            raise ValueError(f"host {v!r} is invalid: use 1-64 letters, digits, '_' or '-'")
        return v

    @field_validator("discovery")
    @classmethod
    def _discovery(cls, v: str) -> str:
        if v not in ("multicast", "none"):
            raise ValueError(f"discovery {v!r} is invalid (valid: multicast, none)")
        return v

    @field_validator("listen", "connect")
    @classmethod
    def _endpoints(cls, v: list[str]) -> list[str]:
        for endpoint in v:
            if not isinstance(endpoint, str) or not _ENDPOINT.fullmatch(endpoint):
                raise ValueError(f"endpoint {endpoint!r} is invalid: expected "
                                 "'tls/ADDRESS:PORT' (or 'tcp/127.0.0.1:PORT' on loopback)")
        return v

    @field_validator("lease_s")
    @classmethod
    def _lease(cls, v: float) -> float:
        if not 0.1 <= v <= 600:
            raise ValueError(f"lease_s must be between 0.1 and 600 seconds, not {v!r}")
        return v

    @field_validator("max_message_bytes")
    @classmethod
    def _max_bytes(cls, v: int) -> int:
        if not 1024 <= v <= 1 << 30:
            raise ValueError(f"max_message_bytes must be between 1024 and {1 << 30}, not {v!r}")
        return v

    @model_validator(mode="after")
    def _secure_beyond_loopback(self) -> "BridgeConfig":
        beyond = [e for e in self.listen + self.connect if not is_loopback_endpoint(e)]
        if self.discovery == "multicast":
            beyond.append("discovery: multicast")
        if beyond and self.security is None:
            raise ValueError(
                f"{', '.join(beyond)} reaches beyond loopback, which needs 'security' (mutual "
                "TLS with a site CA): make the certificates with `ether certs init SITE` and "
                "`ether certs host NAME`, then set security: {ca: ..., cert: ..., key: ...}")
        if self.security is not None:
            plain = [e for e in self.listen + self.connect if not e.startswith("tls/")]
            if plain:
                raise ValueError(f"with 'security', endpoints must be tls/: {', '.join(plain)}")
        return self

    def host_name(self) -> str:
        return self.host or default_host_name()


class SecurityFiles(BaseModel):
    """The security section's three files, resolved to absolute paths and checked."""

    model_config = ConfigDict(frozen=True)
    ca: Path
    cert: Path
    key: Path


_PEM_MARKERS = {"ca": b"-----BEGIN CERTIFICATE-----", "cert": b"-----BEGIN CERTIFICATE-----",
                "key": b"PRIVATE KEY-----"}


def check_security_files(security: BridgeSecurityConfig,
                         base_dir: str | os.PathLike[str] | None = None) -> SecurityFiles:
    """Resolve ``security``'s ca, cert and key against ``base_dir`` (the config file's
    folder, :attr:`EtherConfig.folder`; the current directory when None) and check
    them before zenoh reads them: each exists, is a regular file we can read and
    holds PEM; the key is the current user's own with no group or other bits, as
    shared-memory segments are. Raises ConfigError naming the file and the fix."""
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    paths = {}
    for what in ("ca", "cert", "key"):
        path = Path(os.path.expanduser(getattr(security, what)))
        path = path if path.is_absolute() else base / path
        paths[what] = Path(os.path.abspath(path))
        _check_file(what, paths[what])
    return SecurityFiles(**paths)


def _check_file(what: str, path: Path) -> None:
    where = f"bridge: security: {what}: {path}"
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise ConfigError(f"{where}: file not found (make it with `ether certs init SITE` "
                          "and `ether certs host NAME`)") from None
    except OSError as e:
        raise ConfigError(f"{where}: cannot open: {e.strerror or e}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"{where}: not a regular file")
        if what == "key":
            if st.st_uid != os.getuid():
                raise ConfigError(f"{where}: owned by uid {st.st_uid}, not by this user "
                                  f"(uid {os.getuid()}); a private key must be your own "
                                  f"(chown {os.getuid()} {path})")
            mode = stat.S_IMODE(st.st_mode)
            if mode & 0o077:
                raise ConfigError(f"{where}: has mode {mode:04o}, readable by others; a private "
                                  f"key must be mode 0600: run `chmod 600 {path}`")
        head = os.read(fd, 1 << 16)
    except OSError as e:
        raise ConfigError(f"{where}: cannot read: {e.strerror or e}") from None
    finally:
        os.close(fd)
    if _PEM_MARKERS[what] not in head:
        kind = "a private key" if what == "key" else "a certificate"
        raise ConfigError(f"{where}: not a PEM file holding {kind}")
