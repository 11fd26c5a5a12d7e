"""The cdef that cffi compiles against (csrc/ether_cdef.h) says what the real
headers say: every prototype matches its declaration, and every constant and
enum member it names exists there. cffi checks little of this itself: a
prototype that drifted from its header may still compile, with a cast."""
import pathlib
import re

import pytest

CSRC = pathlib.Path(__file__).resolve().parents[2] / "csrc"
CDEF = CSRC / "ether_cdef.h"
# the declarations the cdef mirrors
API_HEADERS = [CSRC / "ether_ring.h", CSRC / "ether_arena.h", CSRC / "ether_process.h"]
ALL_HEADERS = sorted(p for p in CSRC.glob("*.h") if p != CDEF)


def _strip(text: str) -> str:
    """The C text without comments, preprocessor lines, and the bodies of braces."""
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    text = re.sub(r"^\s*#.*?(?<!\\)$", " ", text, flags=re.M | re.S)
    out, depth = [], 0
    for ch in text:
        if ch == "{":
            depth += 1
            if depth == 1:
                out.append("{")
        elif ch == "}":
            depth -= 1
            if depth == 0:
                out.append("}")
        elif depth == 0:
            out.append(ch)
    return "".join(out)


def _normal_type(text: str) -> str:
    """A type with one space between words and none around '*'."""
    text = re.sub(r"\s+", " ", text).strip()
    return re.sub(r"\s*\*\s*", "*", text)


def _parameter_type(param: str) -> str:
    """'const char *data' -> 'const char*'; a lone type ('void') stays."""
    param = _normal_type(param)
    words = re.findall(r"[A-Za-z_]\w*", param)
    if len(words) >= 2 and not re.fullmatch(r"(const|volatile|unsigned|signed|struct|enum)", words[-1]):
        param = _normal_type(param[: param.rindex(words[-1])])
    return param


def prototypes(text: str) -> dict[str, str]:
    """name -> 'return(param types)' of every function declared (not defined) at file level."""
    out = {}
    for statement in _strip(text).split(";"):
        statement = statement.rsplit("}", 1)[-1]  # what follows a definition or a struct body
        statement = re.sub(r"\s+", " ", statement).strip()
        if not statement or statement.startswith("typedef") or "(" not in statement:
            continue
        m = re.fullmatch(r"(?P<ret>.+?)\b(?P<name>\w+) ?\((?P<params>.*)\)", statement)
        assert m, f"cannot parse the declaration {statement!r}"
        params = [_parameter_type(p) for p in m["params"].split(",")]
        out[m["name"]] = f"{_normal_type(m['ret'])}({', '.join(params)})"
    return out


def defines(text: str) -> set[str]:
    return set(re.findall(r"^\s*#\s*define\s+(\w+)", text, flags=re.M))


def enums(text: str) -> dict[str, list[str]]:
    """typedef name -> its members, for every `typedef enum { ... } name;`."""
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    out = {}
    for body, name in re.findall(r"typedef\s+enum\s*\{(.*?)\}\s*(\w+)\s*;", text, flags=re.S):
        items = (re.fullmatch(r"([A-Za-z_]\w*)\s*(=.*)?", item.strip(), flags=re.S) for item in body.split(","))
        out[name] = [m[1] for m in items if m]  # '...' (cffi's "and more") is no member
    return out


CDEF_TEXT = CDEF.read_text()
HEADER_PROTOTYPES = {name: proto for path in API_HEADERS for name, proto in prototypes(path.read_text()).items()}
HEADER_DEFINES = set().union(*(defines(p.read_text()) for p in ALL_HEADERS))
HEADER_ENUMS = {name: members for p in ALL_HEADERS for name, members in enums(p.read_text()).items()}


def test_the_parser_reads_declarations_as_written():
    text = """
    /* a comment with a (parenthesis); */
    #define X(a) \\
        (a)
    typedef struct { int (*f)(int); } t;
    static inline void helper(void) { call(); }
    const char *ether_f(const ether_t * ring,
                        uint64_t *out, uint32_t count);
    void ether_g(void);
    """
    assert prototypes(text) == {"ether_f": "const char*(const ether_t*, uint64_t*, uint32_t)",
                                "ether_g": "void(void)"}
    assert defines(text) == {"X"}
    assert enums("typedef enum { A = 0, B = -1, /* c */ C, ... } e_t;") == {"e_t": ["A", "B", "C"]}


def test_the_headers_declare_the_api():
    assert len(HEADER_PROTOTYPES) > 40
    assert "ether_ring_write" in HEADER_PROTOTYPES and "ether_arena_view_init" in HEADER_PROTOTYPES


@pytest.mark.parametrize("name", sorted(prototypes(CDEF_TEXT)))
def test_every_cdef_prototype_matches_its_header(name):
    cdef = prototypes(CDEF_TEXT)[name]
    assert name in HEADER_PROTOTYPES, f"{name} is in ether_cdef.h but declared in no header"
    assert cdef == HEADER_PROTOTYPES[name], f"{name}: cdef {cdef} != header {HEADER_PROTOTYPES[name]}"


def test_every_cdef_constant_exists_in_the_headers():
    members = {m for ms in HEADER_ENUMS.values() for m in ms}
    missing = sorted(n for n in defines(CDEF_TEXT) if n not in HEADER_DEFINES and n not in members)
    assert not missing, f"ether_cdef.h names constants no header defines: {missing}"


@pytest.mark.parametrize("name", sorted(enums(CDEF_TEXT)))
def test_every_cdef_enum_lists_the_members_of_its_header(name):
    assert name in HEADER_ENUMS, f"the enum {name} of ether_cdef.h is in no header"
    assert enums(CDEF_TEXT)[name] == HEADER_ENUMS[name]
