"""Decorating unmodified classes from the config's registry, and default topics."""
import pathlib
import re
import subprocess
import sys

import pytest

import ether as ether_pkg
from ether import ether
from ether._spec._decorators import spec_of

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_readme_registry_example_runs():
    proc = subprocess.run([sys.executable, "-m", "examples.external_class_integration"], cwd=ROOT,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout
    assert "Generating data - 21" in proc.stdout
    assert "main: processed_data = {'result': 42}" in proc.stdout
    assert "Collected result - 42" in proc.stdout  # delivered before shutdown completed


def test_the_third_party_class_still_works_as_a_plain_class(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    from examples.external_class_integration import third_party_module as m
    assert m.DataProcessor(3).process_data(data=2) == {"result": 6}


@pytest.mark.parametrize("registry, match", [
    ({"apps.NoSuch": {"methods": {"x": {"ether_sub": {}}}}}, "has no class 'NoSuch'"),
    ({"apps.Doubler": {"methods": {"tripple": {"ether_sub": {}}}}},
     r"registry: apps.Doubler.tripple: class Doubler has no method 'tripple' \(its methods: double\)"),
    ({"apps.Doubler": {"methods": {"double": {"ether_sub": {"topik": "x"}}}}},
     r"registry: apps.Doubler.double: ether_sub\(\) got unknown argument\(s\) topik"),
    ({"apps.Undecorated": {"methods": {"__init__": {"ether_sub": {}}}}},
     r"registry: apps.Undecorated.__init__: '__init__' cannot be annotated"),
])
def test_a_broken_registry_entry_fails_tap(registry, match):
    with pytest.raises(ether_pkg.ConfigError, match=match):
        ether.tap(config={"registry": registry, "instances": {"d": {"class_path": "apps.Doubler"}}})
    assert ether.session is None


def test_readme_lab_monitoring_example_with_default_topics():
    ether.tap(config={"instances": {
        "sensor": {"class_path": "apps.TemperatureSensor"},
        "logger": {"class_path": "apps.DataLogger"},
        "controller": {"class_path": "apps.ExperimentController"},
    }})
    try:
        with ether.listen("alarm", timeout=10) as alarms:
            ether.start()
            assert next(alarms) == {"temperature": 95.0}  # 20.5 passed, 95.0 tripped the alarm
    finally:
        ether.shutdown()


def test_registry_annotations_last_only_as_long_as_the_session():
    import apps
    from ether._spec._decorators import spec_of
    ether.tap(config={
        "registry": {"apps.Undecorated": {"methods": {"triple": {
            "ether_sub": {"topic": "in"}, "ether_pub": {"topic": "out"}}}}},
        "instances": {"u": {"class_path": "apps.Undecorated"}}})
    try:
        assert spec_of(apps.Undecorated.triple) is not None
        with ether.listen("out", timeout=10) as out:
            ether.pub({"x": 2}, topic="in")
            assert next(out) == {"x": 6}
    finally:
        ether.shutdown()
    assert spec_of(apps.Undecorated.triple) is None  # plain again in this process


# ---- a registry entry that no instance uses ----

def test_a_registry_entry_for_a_class_that_no_instance_runs_fails_tap():
    import apps
    try:
        with pytest.raises(ether_pkg.ConfigError,
                           match=r"registry 'apps.Undecorated': no instance runs this class "
                                 r"\(the instances run apps.Doubler\).*allow_unused: true"):
            ether.tap(config={
                "registry": {"apps.Undecorated": {"methods": {"triple": {"ether_sub": {}}}}},
                "instances": {"d": {"class_path": "apps.Doubler"}}})
        assert ether.session is None
    finally:
        ether.shutdown()
    assert spec_of(apps.Undecorated.triple) is None  # undone


def test_a_registry_entry_marked_allow_unused_taps():
    ether.tap(config={
        "registry": {"apps.Undecorated": {"allow_unused": True,
                                          "methods": {"triple": {"ether_sub": {}}}}},
        "instances": {"d": {"class_path": "apps.Doubler"}}})
    ether.shutdown()


@pytest.mark.parametrize("class_path", ["runtime_apps.UndecoratedAlias", "runtime_apps.UndecoratedChild"])
def test_a_registry_entry_is_used_by_an_instance_of_the_same_class_or_a_subclass(class_path):
    ether.tap(config={
        "registry": {"apps.Undecorated": {"methods": {"triple": {
            "ether_sub": {"topic": "in"}, "ether_pub": {"topic": "out"}}}}},
        "instances": {"u": {"class_path": class_path}}})
    try:
        with ether.listen("out", timeout=10) as out:
            ether.pub({"x": 2}, topic="in")
            assert next(out) == {"x": 6}
    finally:
        ether.shutdown()


def test_an_empty_config_is_a_warning(capfd):
    ether.tap(config={})
    ether.shutdown()
    assert re.search(r"WARNING - the config has no instances", capfd.readouterr().err)
