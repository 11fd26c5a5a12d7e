"""The installed distributions as provenance records them (_runtime/_installed.py),
against importlib.metadata as the oracle."""
from __future__ import annotations

import re
import sys
from importlib.metadata import distributions

import pytest

from ether._runtime import _installed


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_the_folder_names_say_what_importlib_metadata_says():
    oracle = {}
    for dist in distributions():  # sys.path order: the first of a name is the one imported
        if dist.metadata["Name"]:
            oracle.setdefault(_normal(dist.metadata["Name"]), dist.version)
    assert _installed.freeze_lines() == sorted(f"{n}=={v}" for n, v in oracle.items())


def test_the_owner_of_a_module_by_its_name_or_its_files():
    import numpy
    import yaml  # distribution "PyYAML", top-level module "yaml": found through the files
    assert _installed.owner("numpy.linalg", numpy.__file__)[0] == "numpy"
    assert _normal(_installed.owner("yaml", yaml.__file__)[0]) == "pyyaml"
    assert _installed.owner("my_lab_code", "/home/me/lab/my_lab_code.py") is None


@pytest.fixture
def site(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    return tmp_path


def test_an_install_is_seen_at_once_and_a_bare_egg_info_is_read(site):
    before = _installed.freeze_lines()
    (site / "lab_rig-2.1.0.dist-info").mkdir()
    (site / "old_tool.egg-info").mkdir()          # no version in the name: its metadata says
    (site / "old_tool.egg-info" / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: Old-Tool\n"
                                                          "Version: 0.3\n")
    (site / "broken.dist-info").mkdir()  # neither: left out, as pip leaves it
    after = _installed.freeze_lines()
    assert sorted(set(after) - set(before)) == ["lab-rig==2.1.0", "old-tool==0.3"]
    assert _installed.owner("lab_rig.stage", str(site / "lab_rig" / "stage.py")) == ("lab_rig", "2.1.0")
