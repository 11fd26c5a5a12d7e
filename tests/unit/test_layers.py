"""The import rule of docs/design/layers.md, read from the source's AST: a layer
imports only the layers below it (lazy, function-local imports included); only
the two binding modules import the compiled core; extension packages import
only the public API."""
import ast
import pathlib

import pytest

SRC = pathlib.Path(__file__).resolve().parents[2] / "src" / "ether"

# Bottom to top. A module may import its own group and any lower rank.
RANKS = {
    "_errors": 0,
    "_settings": 1, "_platform": 1, "config": 1,
    "_core": 2, "_trace": 2,
    "_node": 3,
    "_spec": 4,
    "_client": 5,
    "_runtime": 6,
    "_facade": 7,
    "__init__": 8, "lowlevel": 8, "utils": 8, "__main__": 8,
}
# Built on the public API only: ether, ether.lowlevel, ether.config (and ether.utils).
EXTENSIONS = {"cli", "bridge", "record", "monitor", "recording"}
# A public front module of an extension package, which it may import.
FRONTS = {"recording": "ether.record"}
# Extension packages whose public names (their __init__, never their _modules)
# other extensions may use: the CLI's record, play and bag commands (ether.record),
# its certs and router commands (ether.bridge), its observing verbs (ether.monitor).
SHARED_EXTENSIONS = {"ether.record", "ether.bridge", "ether.monitor"}
PUBLIC = {"ether", "ether.lowlevel", "ether.config", "ether.utils"}
BINDINGS = {"ether._core._ring", "ether._core._arena_c", "ether._core._process"}
COMPILED = "ether._ether_c"


def _modules():
    for path in sorted(SRC.rglob("*.py")):
        parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        yield ".".join(parts), is_package, path


MODULES = {name for name, _, _ in _modules()}


def _imports(name: str, is_package: bool, path: pathlib.Path):
    """(imported module, line) for every import in the file, relative ones resolved;
    `from pkg import sub` counts as importing pkg.sub when sub is a module."""
    package = name if is_package else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            subs = [f"{module}.{a.name}" for a in node.names if f"{module}.{a.name}" in MODULES
                    or f"{module}.{a.name}" == COMPILED]
            yield from ((m, node.lineno) for m in subs)
            if len(subs) < len(node.names):
                yield module, node.lineno


def _group(module: str) -> str:
    parts = module.split(".")
    return "__init__" if len(parts) == 1 else parts[1]


def test_every_module_belongs_to_a_known_layer_or_extension_package():
    unknown = sorted(m for m in MODULES if _group(m) not in RANKS and _group(m) not in EXTENSIONS)
    assert unknown == [], f"add these to the layer map (docs/design/layers.md and RANKS): {unknown}"


@pytest.mark.parametrize("name,is_package,path", list(_modules()), ids=lambda v: str(v))
def test_a_module_imports_only_layers_below_it(name, is_package, path):
    group = _group(name)
    wrong = []
    for module, line in _imports(name, is_package, path):
        if not module.startswith("ether"):
            continue
        if module == COMPILED or module.startswith(COMPILED + "."):
            if name not in BINDINGS:
                wrong.append(f"line {line}: imports the compiled core (only {sorted(BINDINGS)} may)")
            continue
        target = _group(module)
        if group in EXTENSIONS:
            if module not in PUBLIC and target != group and module not in SHARED_EXTENSIONS \
                    and not (group in FRONTS and module.startswith(FRONTS[group])):
                wrong.append(f"line {line}: {module} (an extension package imports only {sorted(PUBLIC)})")
            continue
        if target == group:
            continue
        if target in EXTENSIONS:
            if name != "ether.__main__":
                wrong.append(f"line {line}: {module} (nothing below imports an extension package)")
            continue
        if RANKS[target] >= RANKS[group] and not (RANKS[group] == 8 and RANKS[target] == 8):
            wrong.append(f"line {line}: {module} ({target}, rank {RANKS[target]}) from "
                         f"{group} (rank {RANKS[group]})")
    assert wrong == [], f"{name}: " + "; ".join(wrong)


def test_the_rule_catches_an_upward_import(tmp_path):
    fake = tmp_path / "ether" / "_core"
    fake.mkdir(parents=True)
    (fake / "_bad.py").write_text("from .._runtime import _supervisor\n")
    found = list(_imports("ether._core._bad", False, fake / "_bad.py"))
    assert ("ether._runtime._supervisor", 1) in found
    assert RANKS[_group("ether._runtime._supervisor")] > RANKS[_group("ether._core._bad")]
