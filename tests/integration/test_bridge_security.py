"""`tap` checks the bridge's certificate files before anything starts: a key
readable by others, or a file that is not there, is a ConfigError naming the
file (resolved against the config file's folder) and the fix, raised before
the session is created."""
from __future__ import annotations

import pytest

from ether import ConfigError, ether

pytest.importorskip("zenoh", reason="the bridge needs zenoh (pip install 'ether[remote]')")
pytest.importorskip("cryptography", reason="ether certs needs cryptography")

CONFIG = """\
bridge:
  site: lab1
  listen: [tls/10.77.0.1:7447]
  security: {ca: certs/lab1-ca.pem, cert: certs/rig-a.pem, key: certs/rig-a.key}
"""


@pytest.fixture
def site_config(tmp_path):
    from ether.bridge import make_ca, make_host
    make_ca("lab1", tmp_path / "certs")
    make_host("rig-a", tmp_path / "certs")
    path = tmp_path / "rig-a.yaml"
    path.write_text(CONFIG)
    return path


@pytest.mark.timeout(30)
def test_tap_refuses_a_key_readable_by_others_before_anything_starts(site_config, tmp_path):
    key = tmp_path / "certs" / "rig-a.key"
    key.chmod(0o644)
    try:
        with pytest.raises(ConfigError) as info:
            ether.tap(config=str(site_config))
    finally:
        ether.shutdown()
    assert str(info.value) == (f"bridge: security: key: {key}: has mode 0644, readable by "
                               f"others; a private key must be mode 0600: run `chmod 600 {key}`")


@pytest.mark.timeout(30)
def test_tap_names_a_missing_certificate_where_the_config_file_says(site_config, tmp_path,
                                                                    monkeypatch):
    (tmp_path / "certs" / "rig-a.pem").unlink()
    monkeypatch.chdir("/")  # the paths start at the config's folder, not here
    with pytest.raises(ConfigError, match=rf"^bridge: security: cert: {tmp_path}/certs/rig-a.pem: "
                                          r"file not found \(make it with `ether certs"):
        try:
            ether.tap(config=str(site_config))
        finally:
            ether.shutdown()
