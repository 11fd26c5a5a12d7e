"""The site CA and host certificates (ether.bridge make_ca / make_host, and
`ether certs`): the chain verifies for both TLS roles, names and key usages are
what rustls needs, keys are born 0600, and nothing is overwritten unasked."""
from __future__ import annotations

import datetime
import ipaddress
import os
import stat

import pytest

from ether import ConfigError, cli
from ether.bridge import make_ca, make_host

x509 = pytest.importorskip("cryptography.x509")
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509 import verification  # noqa: E402
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: E402


def _cert(path):
    return x509.load_pem_x509_certificate(path.read_bytes())


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_host_certificate_verifies_against_the_site_ca_as_server_and_client(tmp_path):
    ca = make_ca("lab1", tmp_path)
    host = make_host("rig-b", tmp_path, ips=["10.77.0.2", "fd00::2"], dns=["rig-b.lab.example"])
    root, leaf = _cert(ca.cert), _cert(host.cert)
    store = verification.Store([root])
    now = datetime.datetime.now(datetime.timezone.utc)
    for name in (x509.DNSName("rig-b"), x509.DNSName("rig-b.lab.example"),
                 x509.IPAddress(ipaddress.ip_address("10.77.0.2"))):
        verifier = verification.PolicyBuilder().store(store).time(now).build_server_verifier(name)
        chain = verifier.verify(leaf, [])
        assert chain[-1] == root
    client = verification.PolicyBuilder().store(store).time(now).build_client_verifier()
    assert client.verify(leaf, []).chain[-1] == root
    with pytest.raises(verification.VerificationError):
        verification.PolicyBuilder().store(store).time(now).build_server_verifier(
            x509.DNSName("rig-c")).verify(leaf, [])


def test_names_key_usages_and_constraints(tmp_path):
    ca = make_ca("lab1", tmp_path)
    host = make_host("rig-b", tmp_path, ips=["10.77.0.2"], dns=["rig-b.lab"])
    leaf, root = _cert(host.cert), _cert(ca.cert)
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "rig-b"
    assert leaf.issuer == root.subject
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["rig-b", "rig-b.lab"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.77.0.2")]
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    assert leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert root.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign is True
    assert isinstance(leaf.public_key(), ec.EllipticCurvePublicKey)
    assert leaf.public_key().curve.name == "secp256r1"
    leaf.verify_directly_issued_by(root)
    assert host.not_after <= ca.not_after
    assert host.ca == ca.cert


def test_keys_are_0600_and_certificates_0644(tmp_path):
    ca = make_ca("lab1", tmp_path)
    host = make_host("rig-b", tmp_path)
    assert (_mode(ca.key), _mode(host.key)) == (0o600, 0o600)
    assert (_mode(ca.cert), _mode(host.cert)) == (0o644, 0o644)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "lab1-ca.key", "lab1-ca.pem", "rig-b.key", "rig-b.pem"]  # no temporary files left


def test_a_permissive_umask_does_not_widen_the_key(tmp_path):
    old = os.umask(0)
    try:
        written = make_ca("lab1", tmp_path)
    finally:
        os.umask(old)
    assert _mode(written.key) == 0o600


def test_existing_files_are_kept_unless_forced(tmp_path):
    first = make_ca("lab1", tmp_path)
    before = first.key.read_bytes()
    with pytest.raises(ConfigError, match=r"lab1-ca.pem, .*lab1-ca.key already exist; pass "
                                          r"--force to replace"):
        make_ca("lab1", tmp_path)
    assert first.key.read_bytes() == before
    make_ca("lab1", tmp_path, force=True)
    assert first.key.read_bytes() != before and _mode(first.key) == 0o600


def test_a_missing_ca_says_how_to_make_one(tmp_path):
    with pytest.raises(ConfigError) as info:
        make_host("rig-b", tmp_path)
    assert str(info.value) == (f"no site CA in {tmp_path} (no SITE-ca.pem with its SITE-ca.key): "
                               f"make one with `ether certs init SITE --dir {tmp_path}`")
    with pytest.raises(ConfigError, match=r"no CA for site 'lab2' in .*lab2-ca.pem.* not found; "
                                          r"make it with `ether certs init lab2"):
        make_host("rig-b", tmp_path, site="lab2")
    assert list(tmp_path.iterdir()) == []


def test_several_cas_need_site(tmp_path):
    make_ca("lab1", tmp_path)
    make_ca("lab2", tmp_path)
    with pytest.raises(ConfigError, match=r"several site CAs in .* \(lab1, lab2\): choose one "
                                          r"with --site"):
        make_host("rig-b", tmp_path)
    written = make_host("rig-b", tmp_path, site="lab2")
    assert _cert(written.cert).issuer == _cert(tmp_path / "lab2-ca.pem").subject


@pytest.mark.parametrize("call,message", [
    (lambda d: make_ca("a/b", d), "site 'a/b' is invalid"),
    (lambda d: make_host("x y", d), "host name 'x y' is invalid"),
    (lambda d: make_host("rig", d, ips=["10.0.0.300"]), "--ip '10.0.0.300' is not an IP address"),
    (lambda d: make_host("rig", d, dns=["a..b"]), "--dns 'a..b' is not a DNS name"),
    (lambda d: make_ca("lab1", d, days=0), "days must be between 1 and 36500, not 0"),
])
def test_bad_input_is_named(tmp_path, call, message):
    make_ca("lab9", tmp_path / "ca")
    with pytest.raises(ConfigError, match=message):
        call(tmp_path / "ca")


def test_a_key_that_is_not_the_cas_is_refused(tmp_path):
    make_ca("lab1", tmp_path)
    other = make_ca("other", tmp_path / "o")
    (tmp_path / "lab1-ca.key").write_bytes(other.key.read_bytes())
    with pytest.raises(ConfigError, match=r"lab1-ca.key is not the key of .*lab1-ca.pem"):
        make_host("rig-b", tmp_path)


def test_the_cli_writes_them_and_prints_the_next_step(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["certs", "init", "lab1"]) == 0
    out = capsys.readouterr().out
    assert "wrote certs/lab1-ca.pem" in out and "wrote certs/lab1-ca.key  (mode 0600" in out
    assert "ether certs host NAME --ip ADDRESS --dir certs" in out
    assert cli.main(["certs", "host", "rig-b", "--ip", "10.0.0.2", "--ip", "10.0.1.2"]) == 0
    out = capsys.readouterr().out
    assert "valid for rig-b, 10.0.0.2, 10.0.1.2 until" in out
    assert ("    security:\n      ca: certs/lab1-ca.pem\n      cert: certs/rig-b.pem\n"
            "      key: certs/rig-b.key\n") in out
    assert _mode(tmp_path / "certs" / "rig-b.key") == 0o600
    assert cli.main(["certs", "host", "rig-b"]) == 2
    assert "already exist; pass --force to replace" in capsys.readouterr().err
    assert cli.main(["certs", "host", "rig-b", "--force"]) == 0


def test_the_cli_without_a_ca(tmp_path, capsys):
    assert cli.main(["certs", "host", "rig-b", "--dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        f"ether: error: no site CA in {tmp_path} (no SITE-ca.pem with its SITE-ca.key): "
        f"make one with `ether certs init SITE --dir {tmp_path}`\n")


def test_without_cryptography_it_says_what_to_install(tmp_path, monkeypatch):
    import builtins
    real = builtins.__import__

    def no_cryptography(name, *args, **kwargs):
        if name == "cryptography" or name.startswith("cryptography."):
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_cryptography)
    with pytest.raises(ConfigError) as info:
        make_ca("lab1", tmp_path)
    assert str(info.value) == ("making certificates needs the 'cryptography' package: "
                               'pip install "ether[remote]"')
