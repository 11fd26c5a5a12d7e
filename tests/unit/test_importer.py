"""import_class finds user modules through the search path, leaves sys.path as it
was, and turns every failure into a ConfigError naming the instance and the cause."""
from __future__ import annotations

import secrets
import sys

import pytest

from ether import ConfigError
from ether._spec._importer import import_class


@pytest.fixture
def mod(tmp_path, monkeypatch):
    """Write a uniquely named module into tmp_path; its name is returned. Modules it
    leaves in sys.modules are dropped after the test."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)

    def write(source: str, *, package: str | None = None) -> str:
        name = "ethertest_" + secrets.token_hex(4)
        where = tmp_path
        if package:
            where = tmp_path / package
            where.mkdir(exist_ok=True)
            (where / "__init__.py").write_text("")
        (where / f"{name}.py").write_text(source)
        return f"{package}.{name}" if package else name
    yield write
    for name in set(sys.modules) - before:
        del sys.modules[name]


def test_imports_a_class_from_the_search_path_and_restores_sys_path(mod, tmp_path):
    name = mod("class Greeter:\n    def hello(self):\n        return 'hi'\n")
    path_before = list(sys.path)
    cls = import_class(f"{name}.Greeter", search_path=[str(tmp_path)])
    assert cls.__name__ == "Greeter" and cls().hello() == "hi"
    assert sys.path == path_before


def test_imports_from_a_package(mod, tmp_path):
    name = mod("class A:\n    pass\n", package="pkg_" + secrets.token_hex(3))
    assert import_class(f"{name}.A", search_path=[str(tmp_path)]).__module__ == name


def test_an_entry_already_on_sys_path_is_neither_duplicated_nor_removed(mod, tmp_path):
    sys.path.append(str(tmp_path))
    name = mod("class A:\n    pass\n")
    import_class(f"{name}.A", search_path=[str(tmp_path), str(tmp_path)])
    assert sys.path.count(str(tmp_path)) == 1


def test_module_not_found_names_module_instance_and_search_path_head(mod, tmp_path):
    with pytest.raises(ConfigError) as info:
        import_class("nosuch_ether_mod.Thing", search_path=[str(tmp_path)], instance="gen1")
    msg = str(info.value)
    assert msg.startswith("instance 'gen1': module 'nosuch_ether_mod' not found for "
                          "class_path 'nosuch_ether_mod.Thing' (no module 'nosuch_ether_mod'; "
                          f"search path: ['{tmp_path}', ")
    assert str(tmp_path) not in sys.path


def test_a_missing_submodule_is_reported_as_not_found(mod, tmp_path):
    pkg = "pkg_" + secrets.token_hex(3)
    mod("", package=pkg)
    with pytest.raises(ConfigError, match=rf"^module '{pkg}\.nope' not found .*no module "
                                          rf"'{pkg}\.nope'"):
        import_class(f"{pkg}.nope.A", search_path=[str(tmp_path)])


def test_a_missing_dependency_of_the_module_is_an_import_failure(mod, tmp_path):
    name = mod("import ether_missing_dependency_xyz\nclass A:\n    pass\n")
    with pytest.raises(ConfigError) as info:
        import_class(f"{name}.A", search_path=[str(tmp_path)], instance="p")
    assert str(info.value).startswith(
        f"instance 'p': importing module '{name}' raised ModuleNotFoundError: "
        "No module named 'ether_missing_dependency_xyz' at ")
    assert f"{name}.py:1" in str(info.value)


def test_missing_class_suggests_close_names(mod, tmp_path):
    name = mod("class DataGenerator:\n    pass\n")
    with pytest.raises(ConfigError) as info:
        import_class(f"{name}.DataGenerater", search_path=[str(tmp_path)], instance="g")
    assert str(info.value) == (f"instance 'g': module '{name}' has no class 'DataGenerater' "
                               "(did you mean 'DataGenerator'?)")


def test_missing_class_without_suggestion(mod, tmp_path):
    name = mod("x = 1\n")
    with pytest.raises(ConfigError) as info:
        import_class(f"{name}.Zzz", search_path=[str(tmp_path)])
    assert str(info.value) == f"module '{name}' has no class 'Zzz'"


def test_not_a_class(mod, tmp_path):
    name = mod("def make():\n    pass\n")
    with pytest.raises(ConfigError) as info:
        import_class(f"{name}.make", search_path=[str(tmp_path)], instance="g")
    assert str(info.value) == f"instance 'g': '{name}.make' is a function, not a class"


def test_an_exception_while_importing_gives_type_message_and_location(mod, tmp_path):
    name = mod("x = 1\nraise RuntimeError('hardware not connected')\n")
    with pytest.raises(ConfigError) as info:
        import_class(f"{name}.A", search_path=[str(tmp_path)], instance="sensor")
    msg = str(info.value)
    assert msg.startswith(f"instance 'sensor': importing module '{name}' raised "
                          "RuntimeError: hardware not connected at ")
    assert msg.endswith(f"{name}.py:2")
    assert isinstance(info.value.__cause__, RuntimeError)
    assert str(tmp_path) not in sys.path


def test_a_syntax_error_names_the_file(mod, tmp_path):
    name = mod("def broken(:\n")
    with pytest.raises(ConfigError, match=rf"importing module '{name}' raised SyntaxError: "
                                          rf".*{name}\.py, line 1"):
        import_class(f"{name}.A", search_path=[str(tmp_path)])


def test_a_module_that_exits_on_import_does_not_exit_the_caller(mod, tmp_path):
    name = mod("import sys\nsys.exit(3)\n")
    with pytest.raises(ConfigError, match=rf"importing module '{name}' raised SystemExit: 3"):
        import_class(f"{name}.A", search_path=[str(tmp_path)])


@pytest.mark.parametrize("bad", ["Thing", "a..B", "a.1B", ""])
def test_a_malformed_class_path(bad):
    with pytest.raises(ConfigError) as info:
        import_class(bad, instance="g")
    assert str(info.value) == (f"instance 'g': class_path {bad!r} is invalid: "
                               "expected 'module.sub.ClassName'")
