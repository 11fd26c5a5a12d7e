"""The config models: README configs load, and every mistake gets a message naming
the file, the instance and the key, and what is valid."""
from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from ether import ConfigError
from ether.config import (EtherConfig, EtherInstanceConfig, RegistryClassConfig,
                          RegistryMethodConfig)

# The instance keys, in the order an unknown key's error lists them.
INSTANCE_KEYS = ("class_path, args, kwargs, restart, max_restarts, restart_window_s, backoff_s, "
                 "backoff_factor, backoff_max_s, stuck_after_s, health_interval_s, host")

DUAL_PROCESSORS = """\
instances:
  generator1:
    class_path: examples.simple_data_processing.DataGenerator
  processor2x:
    class_path: examples.simple_data_processing.DataProcessor
    kwargs:
      multiplier: 2
  processor4x:
    class_path: examples.simple_data_processing.DataProcessor
    kwargs:
      multiplier: 4
  collector1:
    class_path: examples.simple_data_processing.DataCollector
"""

REGISTRY = """\
registry:
  examples.external_class_integration.DataGenerator:
    methods:
      generate_data:
        ether_sub: {} # Empty dict for default settings
        ether_pub:
          topic: "data" # Publish to 'data' topic
  examples.external_class_integration.DataProcessor:
    methods:
      process_data:
        ether_sub:
          topic: "data" # Subscribe to 'data' topic
        ether_pub:
          topic: "processed_data" # Publish to 'processed_data' topic
  examples.external_class_integration.DataCollector:
    methods:
      collect_result:
        ether_sub:
          topic: "processed_data" # Subscribe to 'processed_data' topic
instances:
  generator:
    class_path: third_party_module.DataGenerator
    kwargs:
      process_id: 1
  processor2x:
    class_path: third_party_module.DataProcessor
    kwargs:
      multiplier: 2
  collector:
    class_path: third_party_module.DataCollector
"""


@pytest.fixture
def write(tmp_path, monkeypatch):
    """Write a YAML file under config/ and return its relative name, as users pass it."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config").mkdir()

    def write(text: str, name: str = "x.yaml") -> str:
        (tmp_path / "config" / name).write_text(text)
        return f"config/{name}"
    return write


def error_of(config) -> str:
    with pytest.raises(ConfigError) as info:
        EtherConfig.load(config)
    return str(info.value)


# -- loading -------------------------------------------------------------------------

def test_loads_the_readme_dual_processors_yaml(write):
    path = write(DUAL_PROCESSORS, "dual_processors.yaml")
    config = EtherConfig.from_yaml(path)
    assert list(config.instances) == ["generator1", "processor2x", "processor4x", "collector1"]
    p4 = config.instances["processor4x"]
    assert p4.class_path == "examples.simple_data_processing.DataProcessor"
    assert p4.args == [] and p4.class_kwargs() == {"multiplier": 4}
    assert config.instances["generator1"].kwargs == {}
    assert config.registry == {}
    assert config.source == Path(path)


def test_load_accepts_a_str_or_pathlike_path(write):
    path = write(DUAL_PROCESSORS)
    assert EtherConfig.load(path) == EtherConfig.load(Path(path))
    assert EtherConfig.load(Path(path)).source == Path(path)


def test_load_accepts_a_dict_and_returns_an_etherconfig_as_is():
    config = EtherConfig.load({"instances": {"g": {"class_path": "a.B", "args": [1, "x"]}}})
    assert config.instances["g"].args == [1, "x"]
    assert config.source is None
    assert EtherConfig.load(config) is config


def test_the_readme_data_service_config_splits_ether_options_from_class_kwargs():
    config = EtherConfig(instances={"data_service": EtherInstanceConfig(
        class_path="test_ether_save.DataService", kwargs={"ether_name": "data_service"})})
    assert EtherConfig.load(config) is config
    inst = config.instances["data_service"]
    assert inst.class_kwargs() == {}
    assert inst.ether_options() == {"ether_name": "data_service"}


def test_class_kwargs_and_ether_options_are_disjoint_copies():
    inst = EtherInstanceConfig(class_path="m.C", kwargs={"a": 1, "ether_name": "n", "b": 2})
    assert inst.class_kwargs() == {"a": 1, "b": 2}
    assert inst.ether_options() == {"ether_name": "n"}
    inst.class_kwargs()["a"] = 9
    assert inst.kwargs["a"] == 1


def test_an_empty_file_is_a_config_without_instances(write):
    config = EtherConfig.from_yaml(write(""))
    assert config.instances == {} and config.registry == {}


def test_parses_the_readme_registry_example(write):
    config = EtherConfig.from_yaml(write(REGISTRY))
    assert list(config.registry) == [
        "examples.external_class_integration.DataGenerator",
        "examples.external_class_integration.DataProcessor",
        "examples.external_class_integration.DataCollector"]
    gen = config.registry["examples.external_class_integration.DataGenerator"]
    assert isinstance(gen, RegistryClassConfig)
    assert gen.methods["generate_data"].decorators() == {
        "ether_pub": {"topic": "data"}, "ether_sub": {}}
    proc = config.registry["examples.external_class_integration.DataProcessor"]
    assert proc.methods["process_data"].decorators() == {
        "ether_pub": {"topic": "processed_data"}, "ether_sub": {"topic": "data"}}
    col = config.registry["examples.external_class_integration.DataCollector"]
    assert col.methods["collect_result"].decorators() == {
        "ether_sub": {"topic": "processed_data"}}
    assert config.instances["generator"].class_kwargs() == {"process_id": 1}


def test_a_null_decorator_means_defaults_and_an_absent_one_is_not_applied(write):
    config = EtherConfig.from_yaml(write(
        "registry:\n  m.C:\n    methods:\n      f:\n        ether_start:\n        ether_get: {}\n"))
    method = config.registry["m.C"].methods["f"]
    assert isinstance(method, RegistryMethodConfig)
    assert method.decorators() == {"ether_start": {}, "ether_get": {}}
    assert method.ether_pub is None


# -- errors ----------------------------------------------------------------------------

def test_unknown_key_in_an_instance_names_file_instance_key_and_valid_keys(write):
    path = write("instances:\n  generator1:\n    clas_path: m.DataGenerator\n")
    assert error_of(path) == ("config/x.yaml: instance 'generator1': unknown key "
                              f"'clas_path' (valid: {INSTANCE_KEYS})")


def test_unknown_key_at_top_level(write):
    assert error_of(write("instance:\n  g: {class_path: m.C}\n")) == (
        "config/x.yaml: unknown key 'instance' (valid: instances, registry, shutdown_timeout_s, bridge, record, supervision)")


def test_missing_class_path():
    assert error_of({"instances": {"g1": {"kwargs": {}}}}) == (
        "instance 'g1': missing required key 'class_path'")


@pytest.mark.parametrize("bad", ["DataGenerator", "m.", "m..C", "m.9C", "m.C-x", 3])
def test_bad_class_path(write, bad):
    msg = error_of({"instances": {"g1": {"class_path": bad}}})
    assert msg == (f"instance 'g1': class_path {bad!r} is invalid: "
                   "expected 'module.sub.ClassName'")


def test_wrong_types_say_what_was_expected(write):
    path = write("instances:\n  g1:\n    class_path: m.C\n    args: 5\n    kwargs: [1]\n")
    assert error_of(path).splitlines() == [
        "config/x.yaml: instance 'g1': key 'args': expected a list, got int 5",
        "config/x.yaml: instance 'g1': key 'kwargs': expected a mapping, got list [1]"]
    assert error_of({"instances": {"g1": None}}) == "instance 'g1': expected a mapping, got null"
    assert error_of(write("- a\n- b\n")) == (
        "config/x.yaml: expected a mapping with keys instances, registry, shutdown_timeout_s, bridge, record, supervision, "
        "got list ['a', 'b']")


def test_unknown_ether_option_lists_the_valid_ones(write):
    path = write("instances:\n  g1:\n    class_path: m.C\n    kwargs: {ether_nam: x}\n")
    assert error_of(path) == ("config/x.yaml: instance 'g1': kwargs: unknown Ether option "
                              "'ether_nam' (valid: ether_name)")


def test_ether_name_must_be_a_valid_name():
    msg = error_of({"instances": {"g1": {"class_path": "m.C", "kwargs": {"ether_name": 7}}}})
    assert msg.startswith("instance 'g1': kwargs: ether_name 7 is invalid: use 1-64 letters")


@pytest.mark.parametrize("name", ["", "a b", "a/b", "..", "session", "x" * 65, "é"])
def test_bad_instance_name(name):
    msg = error_of({"instances": {name: {"class_path": "m.C"}}})
    assert msg.startswith(f"instance name {name!r} is invalid: use 1-64 letters, digits, "
                          "'_', '-' or '.'")


@pytest.mark.parametrize("name", ["g", "proc_2x", "a-b.c", "A1"])
def test_good_instance_names(name):
    assert list(EtherConfig.load({"instances": {name: {"class_path": "m.C"}}}).instances) == [name]


def test_a_non_string_instance_name(write):
    assert error_of(write("instances:\n  1: {class_path: m.C}\n")) == (
        "config/x.yaml: instance 1: name: expected a string, got int 1")


def test_unknown_registry_decorator_names_class_method_and_valid_keys(write):
    path = write("registry:\n  m.C:\n    methods:\n      f:\n        ether_subscribe: {}\n")
    assert error_of(path) == (
        "config/x.yaml: registry 'm.C': method 'f': unknown key 'ether_subscribe' (valid: "
        "ether_pub, ether_sub, ether_start, ether_get, ether_save, ether_sync)")


def test_registry_shape_errors():
    assert error_of({"registry": {"m.C": {"method": {}}}}) == (
        "registry 'm.C': unknown key 'method' (valid: methods, allow_unused)")
    assert error_of({"registry": {"m.C": {"methods": {"f": {"ether_pub": "data"}}}}}) == (
        "registry 'm.C': method 'f': ether_pub: expected a mapping, got str 'data'")
    assert error_of({"registry": {"m.C": {"methods": {"f": {"ether_pub": {"to pic": 1}}}}}}) == (
        "registry 'm.C': method 'f': ether_pub: 'to pic' is not a keyword argument name")
    assert error_of({"registry": {"m.C": {"methods": {"2f": {}}}}}) == (
        "registry 'm.C': method name '2f' is not a Python identifier")
    assert error_of({"registry": {"Cls": {}}}) == (
        "registry class path 'Cls' is invalid: expected 'module.sub.ClassName'")


def test_yaml_syntax_error_names_file_and_line(write):
    path = write("instances:\n  g1:\n    class_path: m.C\n    kwargs: {a: 1\n")
    msg = error_of(path)
    assert msg.startswith("config/x.yaml: line 5, column 1: invalid YAML: ")


def test_a_duplicate_key_is_an_error_not_a_silent_override(write):
    path = write("instances:\n  g1: {class_path: m.A}\n  g1: {class_path: m.B}\n")
    assert error_of(path) == "config/x.yaml: line 3, column 3: invalid YAML: duplicate key 'g1'"


def test_a_tab_and_an_undefined_alias_say_what_the_parser_met(write):
    assert error_of(write("instances:\n\tg1: {class_path: m.A}\n")) == (
        "config/x.yaml: line 2, column 1: invalid YAML: found character that cannot start "
        "any token (a tab: YAML indents with spaces)")
    assert error_of(write("instances:\n  g1: *base\n")) == (
        "config/x.yaml: line 2, column 7: invalid YAML: found undefined alias (at '*base')")


@pytest.mark.parametrize("parser", ["SafeLoader", "CSafeLoader"])
def test_both_yaml_parsers_load_the_same_and_reject_a_duplicate_key(write, monkeypatch, parser):
    import yaml
    if not hasattr(yaml, parser):
        pytest.skip(f"this PyYAML has no {parser} (built without libyaml)")
    monkeypatch.setattr(yaml, "CSafeLoader", getattr(yaml, parser))   # what the loader picks
    text = "instances:\n  g1: &g {class_path: m.A, kwargs: {n: 1}}\n  g2: *g\n"
    config = EtherConfig.load(write(text))
    assert [i.class_kwargs() for i in config.instances.values()] == [{"n": 1}, {"n": 1}]
    assert error_of(write("instances:\n  g1: {class_path: m.A}\n  g1: {class_path: m.B}\n")) == (
        "config/x.yaml: line 3, column 3: invalid YAML: duplicate key 'g1'")


def test_a_merge_key_works_and_may_be_overridden_but_a_written_key_not_twice(write):
    text = ("base: &base {class_path: m.A, kwargs: {n: 1}}\n"
            "instances:\n  g1:\n    <<: *base\n    kwargs: {n: 2}\n")
    with pytest.raises(ConfigError, match="unknown key 'base'"):
        EtherConfig.load(write(text))   # the anchor's own key is not a config key...
    text = ("instances:\n  g0: &base {class_path: m.A, kwargs: {n: 1}}\n"
            "  g1:\n    <<: *base\n    kwargs: {n: 2}\n")
    config = EtherConfig.load(write(text))   # ...but an instance's mapping may be merged
    assert config.instances["g1"].class_path == "m.A"
    assert config.instances["g1"].class_kwargs() == {"n": 2}
    assert error_of(write("instances:\n  g1:\n    <<: {class_path: m.A}\n"
                          "    class_path: m.B\n    class_path: m.C\n")) == (
        "config/x.yaml: line 5, column 5: invalid YAML: duplicate key 'class_path'")


def test_a_complex_key_is_a_config_error_with_its_line(write):
    msg = error_of(write("instances:\n  ? [1]\n  : {class_path: m.A}\n"))
    assert msg == "config/x.yaml: line 2, column 5: invalid YAML: found unhashable key (at '[')"


def test_missing_file_says_so(write, tmp_path):
    assert error_of("config/nope.yaml") == (
        f"config/nope.yaml: config file not found (looked at {tmp_path}/config/nope.yaml)")


def test_load_rejects_other_types():
    assert error_of(42) == ("config must be a path to a YAML file, a dict or an "
                            "EtherConfig, not int")


def test_direct_construction_raises_configerror_not_validationerror():
    with pytest.raises(ConfigError) as info:
        EtherConfig(instances={"g1": {"class_path": "m.C", "kwargz": {}}})
    assert not isinstance(info.value, ValidationError)
    assert str(info.value) == ("instance 'g1': unknown key 'kwargz' "
                               f"(valid: {INSTANCE_KEYS})")
    with pytest.raises(ConfigError, match=r"^class_path 'C' is invalid"):
        EtherInstanceConfig(class_path="C")


def test_every_problem_is_reported_once_per_line():
    msg = error_of({"instances": {"a": {"class_path": "C"}, "b": {"x": 1, "class_path": "m.C"}}})
    assert msg.splitlines() == [
        "instance 'a': class_path 'C' is invalid: expected 'module.sub.ClassName'",
        f"instance 'b': unknown key 'x' (valid: {INSTANCE_KEYS})"]


@pytest.mark.parametrize("record,message", [
    ({"policy": "zz", "all": True}, "record: policy must be 'block' or 'drop', not 'zz'"),
    ({}, "record: name topics (or patterns) to record, or set all: true"),
    ({"all": True, "name": "a b"}, "record: name 'a b' is invalid"),
    ({"all": True, "split_size": 10}, "record: split_size must be at least 4096 bytes, not 10"),
    ({"all": True, "bogus": 1}, "record: unknown key 'bogus' (valid: output, topics,"),
    (5, "record: expected a mapping, got int 5"),
])
def test_record_section_errors_name_the_section(record, message):
    assert error_of({"record": record}).startswith(message)


def test_sections_models_are_built_only_when_needed():
    """The bridge and record models cost a schema build each: a config without the
    sections does not build them (config/_bridge.py, config/_record.py)."""
    import subprocess
    import sys
    code = ("import sys\nfrom ether.config import EtherConfig\n"
            "EtherConfig.load({'instances': {'a': {'class_path': 'm.C'}}})\n"
            "assert 'ether.config._bridge' not in sys.modules\n"
            "assert 'ether.config._record' not in sys.modules\n"
            "c = EtherConfig.load({'bridge': None, 'record': {'all': True}})\n"
            "assert type(c.bridge).__name__ == 'BridgeConfig' and c.record.all\n"
            "from ether.config import BridgeConfig, RecordConfig\n"
            "assert isinstance(c.bridge, BridgeConfig) and isinstance(c.record, RecordConfig)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
