"""The site CA and the host certificates that mutual TLS between bridges rests on.

One private CA per site signs every host; a host proves its name (the
certificate's common name, which ``allow_hosts`` lists) by its certificate,
and trusts only peers signed by the same CA. ``ether certs init SITE`` makes
the CA, ``ether certs host NAME`` each host's certificate (research/remote.md
§2c, §3.7). Keys are EC P-256, the certificates X.509 v3 with what rustls
(zenoh's TLS) requires: a subject alternative name for every name and address
the host is reached by, and both serverAuth and clientAuth, since a bridge
both accepts and opens links.

Private keys are created with mode 0600 and moved into place atomically: they
are never visible with a wider mode, and never half-written. An existing file
is kept unless ``force`` is given. Needs ``cryptography`` (the ``remote`` extra),
imported only when a certificate is made.
"""
from __future__ import annotations

import datetime
import ipaddress
import os
import re
import secrets
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from ether import ConfigError

__all__ = ["CA_DAYS", "HOST_DAYS", "Written", "ca_paths", "host_paths", "make_ca", "make_host"]

CA_DAYS = 3650
HOST_DAYS = 825
_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_DNS = re.compile(r"(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,62}))*")
_INSTALL = 'pip install "ether[remote]"'


class Written(NamedTuple):
    """What was written: the certificate, its key, when it expires, and the site
    CA's certificate (the certificate itself for a CA)."""

    cert: Path
    key: Path
    not_after: datetime.datetime
    ca: Path


def ca_paths(site: str, directory: str | os.PathLike[str]) -> tuple[Path, Path]:
    return Path(directory) / f"{site}-ca.pem", Path(directory) / f"{site}-ca.key"


def host_paths(name: str, directory: str | os.PathLike[str]) -> tuple[Path, Path]:
    return Path(directory) / f"{name}.pem", Path(directory) / f"{name}.key"


def make_ca(site: str, directory: str | os.PathLike[str] = ".", *, force: bool = False,
            days: int = CA_DAYS) -> Written:
    """Make the site CA: ``SITE-ca.pem`` (public, given to every host) and
    ``SITE-ca.key`` (secret, needed only to sign host certificates)."""
    _check_name(site, "site")
    _check_days(days)
    x509, hashes, serialization, ec, NameOID, _ = _crypto()
    cert_path, key_path = ca_paths(site, directory)
    _refuse_existing((cert_path, key_path), force)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{site} ether site CA"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, f"ether site {site}")])
    start, end = _validity(days)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(x509, ca=True), critical=True)
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256()))
    _write_pair(cert_path, cert.public_bytes(serialization.Encoding.PEM),
                key_path, _key_pem(key, serialization), force)
    return Written(cert_path, key_path, end, cert_path)


def make_host(name: str, directory: str | os.PathLike[str] = ".", *, site: str | None = None,
              ips: Sequence[str] = (), dns: Sequence[str] = (), force: bool = False,
              days: int = HOST_DAYS) -> Written:
    """Make ``NAME.pem`` and ``NAME.key`` in ``directory``: a certificate with
    common name NAME, signed by the site CA found there (``SITE-ca.pem`` and
    ``SITE-ca.key``; ``site`` picks one when several are), valid for NAME and
    the given IP addresses and DNS names."""
    _check_name(name, "host name")
    _check_days(days)
    addresses = [_ip(ip) for ip in ips]
    names = list(dict.fromkeys([name, *(_dns(d) for d in dns)]))
    x509, hashes, serialization, ec, NameOID, ExtendedKeyUsageOID = _crypto()
    ca_cert_path, ca_key_path = _find_ca(Path(directory), site)
    ca_cert, ca_key = _load_ca(ca_cert_path, ca_key_path, x509, serialization, ec)
    cert_path, key_path = host_paths(name, directory)
    _refuse_existing((cert_path, key_path), force)
    key = ec.generate_private_key(ec.SECP256R1())
    start, end = _validity(days)
    end = min(end, ca_cert.not_valid_after_utc)
    san = [x509.DNSName(n) for n in names] + [x509.IPAddress(a) for a in addresses]
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(x509, ca=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                  ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .add_extension(x509.SubjectAlternativeName(san), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    _write_pair(cert_path, cert.public_bytes(serialization.Encoding.PEM),
                key_path, _key_pem(key, serialization), force)
    return Written(cert_path, key_path, end, ca_cert_path)


# -- helpers ----------------------------------------------------------------------

def _crypto() -> tuple[Any, ...]:
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    except ImportError:
        raise ConfigError("making certificates needs the 'cryptography' package: "
                          f"{_INSTALL}") from None
    return x509, hashes, serialization, ec, NameOID, ExtendedKeyUsageOID


def _check_name(name: str, what: str) -> None:
    if not _NAME.fullmatch(name):
        raise ConfigError(f"{what} {name!r} is invalid: use 1-64 letters, digits, '_' or '-'")


def _check_days(days: int) -> None:
    if not 1 <= days <= 36500:
        raise ConfigError(f"days must be between 1 and 36500, not {days!r}")


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise ConfigError(f"--ip {text!r} is not an IP address") from None


def _dns(text: str) -> str:
    if not _DNS.fullmatch(text):
        raise ConfigError(f"--dns {text!r} is not a DNS name")
    return text


def _validity(days: int) -> tuple[datetime.datetime, datetime.datetime]:
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    # An hour of slack for hosts whose clocks are a little behind.
    return now - datetime.timedelta(hours=1), now + datetime.timedelta(days=days)


def _key_usage(x509: Any, *, ca: bool) -> Any:
    return x509.KeyUsage(digital_signature=True, content_commitment=False,
                         key_encipherment=False, data_encipherment=False, key_agreement=False,
                         key_cert_sign=ca, crl_sign=ca, encipher_only=False, decipher_only=False)


def _key_pem(key: Any, serialization: Any) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _find_ca(directory: Path, site: str | None) -> tuple[Path, Path]:
    if site is not None:
        _check_name(site, "site")
        cert, key = ca_paths(site, directory)
        if not cert.exists() or not key.exists():
            missing = ", ".join(str(p) for p in (cert, key) if not p.exists())
            raise ConfigError(f"no CA for site {site!r} in {directory}: {missing} not found; "
                              f"make it with `ether certs init {site} --dir {directory}`")
        return cert, key
    found = sorted(p for p in directory.glob("*-ca.pem") if p.with_suffix(".key").exists())
    if not found:
        raise ConfigError(f"no site CA in {directory} (no SITE-ca.pem with its SITE-ca.key): "
                          f"make one with `ether certs init SITE --dir {directory}`")
    if len(found) > 1:
        sites = ", ".join(p.name[:-len("-ca.pem")] for p in found)
        raise ConfigError(f"several site CAs in {directory} ({sites}): choose one with --site")
    return found[0], found[0].with_suffix(".key")


def _load_ca(cert_path: Path, key_path: Path, x509: Any, serialization: Any,
             ec: Any) -> tuple[Any, Any]:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as e:
        raise ConfigError(f"cannot read the site CA {cert_path} / {key_path}: {e}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or (
            key.public_key().public_numbers() != cert.public_key().public_numbers()):
        raise ConfigError(f"{key_path} is not the key of {cert_path}")
    return cert, key


def _refuse_existing(paths: Iterable[Path], force: bool) -> None:
    existing = [str(p) for p in paths if os.path.lexists(p)]
    if existing and not force:
        raise ConfigError(f"{', '.join(existing)} already exist{'s' if len(existing) == 1 else ''}; "
                          "pass --force to replace")


def _write_pair(cert_path: Path, cert: bytes, key_path: Path, key: bytes, force: bool) -> None:
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    _write(key_path, key, 0o600, force)
    _write(cert_path, cert, 0o644, force)


def _write(path: Path, data: bytes, mode: int, force: bool) -> None:
    """Write ``data`` to a new file created with ``mode`` beside ``path``, then move
    it into place: replacing with ``force``, else only if ``path`` is still absent."""
    fd, tmp = _create(path.parent, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if force:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)  # fails if path appeared meanwhile: never overwrite
            except FileExistsError:
                raise ConfigError(f"{path} already exists; pass --force to replace") from None
            os.unlink(tmp)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise


def _create(directory: Path, mode: int) -> tuple[int, str]:
    for _ in range(100):
        tmp = os.path.join(directory, f".{secrets.token_hex(8)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode), tmp
        except FileExistsError:
            continue
    raise ConfigError(f"cannot create a temporary file in {directory}")
