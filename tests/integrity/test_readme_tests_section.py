"""The README's Tests section, held to the test files (read with ``ast``; nothing is imported or run).

- Every test file or folder the README names (anywhere in it) exists: a path under ``tests/``, or in the
  Tests section a bare ``test_*.py`` name, which lives in the folder of the bullet it is in.
- Every folder under ``tests/`` holding test files has its bullet in the section.
- A file listed after "state written by OpenClaw <release>" (up to the next such claim or the end of its
  bullet) has a test that reaches a call having OpenClaw of that release write a state dir: in the test,
  in a function of its module it calls, or in a pytest fixture it takes (from its module or a
  ``conftest.py`` above it), directly or through other fixtures. The calls that write, and the release
  each runs, are read from ``tools/``: each state builder (``BUILDERS``: ``openclaw_state``,
  ``legacy_state``, ``held_state``, ``checkpoint_state``, ``rewrite_state``, the demo's ``built_state``)
  runs the releases of the installer classes its code uses, directly or through the functions of
  ``tools/`` it calls (``OpenClaw``, ``LegacyOpenClaw``, whose ``VERSION`` pins the release); an
  installer's own ``installed().gateway(...)`` runs its release, and ``installed().run(...)`` only for a
  CLI command that writes (``doctor``, ``agent``, ``sessions delete`` / ``archive``). Importing a helper
  of the fixture module, or running OpenClaw's Node to write rows by hand, is not OpenClaw writing the
  state; nor is reading a copy OpenClaw once wrote that is kept in the repository (``tools/demo/data``).
- A file listed after "state from the project's generator" has a test that reaches a call of
  ``tools.demo.sample_state`` and none that reaches an OpenClaw writer.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from tools.stacks.sandbox import ROOT

README = ROOT / "README.md"
TESTS = ROOT / "tests"
OPENCLAW_TOOLS = ROOT / "tools" / "openclaw"
GENERATOR = "tools.demo.sample_state"
CLAIM = re.compile(
    r"state written by OpenClaw(?: (?P<release>\d+\.\d+\.\d+))?"
    r"|(?P<generator>state from the project's generator)"
)
# The fixture builders tests call; the releases each runs are read from its code (:func:`writers`).
BUILDERS = (
    "tools.openclaw.fixture.openclaw_state",
    "tools.openclaw.fixture.built_fixture",
    "tools.openclaw.legacy.legacy_state",
    "tools.openclaw.legacy.built_fixture",
    "tools.openclaw.live.held_state",
    "tools.openclaw.checkpoint.checkpoint_state",
    "tools.openclaw.rewrite.rewrite_state",
    "tools.demo.rebuild.built_state",
)
# The CLI commands (argv prefixes) that write a state dir; any other ``run`` (a listing, a version) reads.
CLI_WRITES = (("doctor",), ("agent",), ("sessions", "delete"), ("sessions", "archive"))


@dataclass
class Section:
    """What the Tests section says: the folders with a bullet, each named test file (path -> the folder
    bullet it is in), the files under each "state written by OpenClaw <release>" claim (release -> files;
    None for a claim naming no release) and the files under the generator claim."""

    folders: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    openclaw: dict[str | None, list[str]] = field(default_factory=dict)
    generator: list[str] = field(default_factory=list)


def readme_tests_section(text: str) -> str:
    found = re.search(r"^## Tests\n(.*?)(?=^## |\Z)", text, flags=re.S | re.M)
    assert found, "README.md has no '## Tests' section"
    return found.group(1)


def bullets(section: str) -> list[tuple[int, str]]:
    """Each bullet of the section with its continuation lines: (indent, text)."""
    items: list[tuple[int, str]] = []
    for line in section.splitlines():
        bullet = re.match(r"^( *)- (.*)", line)
        if bullet:
            items.append((len(bullet.group(1)), bullet.group(2)))
        elif items and line.startswith(" ") and line.strip():
            indent, text = items[-1]
            items[-1] = (indent, f"{text} {line.strip()}")
    return items


def named_test_files(text: str, folder: str | None) -> list[str]:
    """The ``test_*.py`` files ``text`` names, as paths (a bare name lives in ``folder``)."""
    names = [name for name in re.findall(r"`([^`]+\.py)`", text) if Path(name).name.startswith("test_")]
    return [name if "/" in name else f"{folder}/{name}" for name in names]


def parse(section: str) -> Section:
    out = Section()
    folder = None
    for indent, text in bullets(section):
        head = re.match(r"`(tests/[a-z0-9_]+)`", text)
        if indent == 0 and head:
            folder = head.group(1)
            out.folders.append(folder)
        for path in named_test_files(text, folder):
            out.files.setdefault(path, folder or "")
        claims = list(CLAIM.finditer(text))
        for n, claim in enumerate(claims):  # its files: up to the next claim or the bullet's end
            end = claims[n + 1].start() if n + 1 < len(claims) else None
            named = named_test_files(text[claim.end() : end], folder)
            if claim.group("generator"):
                out.generator += named
            else:
                out.openclaw.setdefault(claim.group("release"), []).extend(named)
    return out


# -- what a module's code calls, read with ast -------------------------------------------------------------
def imported_modules(tree: ast.Module) -> dict[str, str]:
    """Each name a module binds by import -> where it comes from (``from a.b import c`` -> ``a.b.c``)."""
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                names[alias.asname or alias.name.split(".")[0]] = alias.name
    return names


def dotted(node: ast.expr, bound: dict[str, str]) -> str | None:
    """The dotted path an expression names, calls in between dropped (``OpenClaw.installed().run`` ->
    ``tools.openclaw.fixture.OpenClaw.installed.run``), its first name resolved through ``bound``."""
    parts: list[str] = []
    while True:
        if isinstance(node, ast.Call):
            node = node.func
        elif isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        elif isinstance(node, ast.Name):
            return ".".join([bound.get(node.id, node.id), *reversed(parts)])
        else:
            return None


@dataclass
class Function:
    """A function of a module: the calls in its body (dotted path, call node), what its body refers to
    (each name and attribute chain as a dotted path, annotations left out) and its parameters (for a
    fixture or a test, the fixtures it takes)."""

    calls: list[tuple[str, ast.Call]]
    refs: set[str]
    params: set[str]
    fixture: bool = False
    autouse: bool = False


def _fixture_decorator(node: ast.FunctionDef) -> tuple[bool, bool]:
    """(is a pytest fixture, is autouse)."""
    for decorator in node.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        if isinstance(target, ast.Attribute) and target.attr == "fixture":
            autouse = isinstance(decorator, ast.Call) and any(
                k.arg == "autouse" and isinstance(k.value, ast.Constant) and k.value.value is True
                for k in decorator.keywords
            )
            return True, autouse
    return False, False


def _used_fixtures(node: ast.FunctionDef) -> set[str]:
    """The fixtures ``@pytest.mark.usefixtures(...)`` names."""
    return {
        arg.value
        for decorator in node.decorator_list
        if isinstance(decorator, ast.Call)
        and isinstance(decorator.func, ast.Attribute)
        and decorator.func.attr == "usefixtures"
        for arg in decorator.args
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str)
    }


def _annotations(node: ast.AST) -> set[int]:
    """The ids of the nodes inside the annotations of ``node`` and of the functions in it."""
    found: set[int] = set()
    for sub in ast.walk(node):
        annotations: list[ast.expr | None] = []
        if isinstance(sub, ast.FunctionDef | ast.AsyncFunctionDef):
            args = sub.args
            every = (*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg)
            annotations = [a.annotation for a in every if a is not None] + [sub.returns]
        elif isinstance(sub, ast.AnnAssign):
            annotations = [sub.annotation]
        found |= {id(n) for a in annotations if a is not None for n in ast.walk(a)}
    return found


def read_function(node: ast.FunctionDef | ast.AsyncFunctionDef, imports: dict[str, str]) -> Function:
    annotations = _annotations(node)
    body = [n for stmt in node.body for n in ast.walk(stmt)]
    # Local names bound to a call's result or a context manager (``oc = OpenClaw.installed()``,
    # ``with oc.gateway(...) as gw``), resolved to what they name, to a fixed point.
    bound = dict(imports)
    pairs = [
        (target.id, value)
        for n in body
        for target, value in (
            [(t, n.value) for t in n.targets]
            if isinstance(n, ast.Assign)
            else [(n.optional_vars, n.context_expr)]
            if isinstance(n, ast.withitem)
            else []
        )
        if isinstance(target, ast.Name)
    ]
    for _ in range(len(pairs) + 1):
        changed = False
        for name, value in pairs:
            path = dotted(value, bound)
            if path and bound.get(name) != path and path.split(".")[0] != name:
                bound[name], changed = path, True
        if not changed:
            break
    calls = [(path, n) for n in body if isinstance(n, ast.Call) and (path := dotted(n, bound))]
    refs = {
        path
        for n in body
        if isinstance(n, ast.Name | ast.Attribute) and id(n) not in annotations and (path := dotted(n, bound))
    }
    fixture, autouse = _fixture_decorator(node) if isinstance(node, ast.FunctionDef) else (False, False)
    params = {a.arg for a in (*node.args.args, *node.args.kwonlyargs)} | _used_fixtures(node)
    return Function(calls, refs, params, fixture, autouse)


@dataclass
class Module:
    path: Path
    imports: dict[str, str]
    functions: dict[str, Function]
    tests: dict[str, Function]
    classes: dict[str, ast.ClassDef]
    constants: dict[str, ast.expr]


@cache
def read_module(path: Path) -> Module:
    tree = ast.parse(path.read_text())
    imports = imported_modules(tree)
    functions, tests, classes, constants = {}, {}, {}, {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            function = read_function(node, imports)
            (tests if node.name.startswith("test_") else functions)[node.name] = function
        elif isinstance(node, ast.ClassDef):
            classes[node.name] = node
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and item.name.startswith("test_"):
                    tests[f"{node.name}.{item.name}"] = read_function(item, imports)
        elif (
            isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
        ):
            constants[node.targets[0].id] = node.value
    return Module(path, imports, functions, tests, classes, constants)


# -- the OpenClaw releases each writer runs, read from tools/openclaw ------------------------------------
def tools_module(dotted_name: str) -> Path:
    return ROOT / (dotted_name.replace(".", "/") + ".py")


def installers() -> dict[str, str]:
    """The installer classes of ``tools/openclaw`` (a class that pins ``VERSION``) -> that release."""
    found = {}
    for path in sorted(OPENCLAW_TOOLS.glob("*.py")):
        module = read_module(path)
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for cls, node in module.classes.items():
            for item in node.body:
                target = item.target if isinstance(item, ast.AnnAssign) else None
                if isinstance(item, ast.Assign) and len(item.targets) == 1:
                    target = item.targets[0]
                if isinstance(target, ast.Name) and target.id == "VERSION" and item.value is not None:
                    value = item.value
                    if isinstance(value, ast.Name):
                        value = module.constants[value.id]
                    assert isinstance(value, ast.Constant), f"{name}.{cls}.VERSION is not a literal"
                    found[f"{name}.{cls}"] = value.value
    return found


def releases_of_builder(builder: str) -> set[str]:
    """The releases a builder under ``tools/`` runs: the installer classes its code uses (annotations left
    out), in it or in the functions of ``tools/`` it calls or passes on, in its module or another."""
    classes = installers()
    seen: set[str] = set()
    todo, found = [builder], set()
    while todo:
        path = todo.pop()
        module_name, _, name = path.rpartition(".")
        file = tools_module(module_name) if module_name.startswith("tools.") else None
        if path in seen or file is None or not file.exists():
            continue
        function = read_module(file).functions.get(name)
        if function is None:
            continue
        seen.add(path)
        for ref in function.refs:
            full = ref if ref.startswith("tools.") else f"{module_name}.{ref}"
            parts = full.split(".")
            for n in range(2, len(parts) + 1):  # each prefix: an installer class, or a function to follow
                prefix = ".".join(parts[:n])
                if prefix in classes:
                    found.add(classes[prefix])
                todo.append(prefix)
    return found


@cache
def writers() -> dict[str, frozenset[str]]:
    """Each call that has OpenClaw write a state dir (dotted path) -> the releases it runs."""
    table = {builder: frozenset(releases_of_builder(builder)) for builder in BUILDERS}
    for cls, release in installers().items():
        for method in ("run", "run_json", "gateway"):
            table[f"{cls}.installed.{method}"] = frozenset({release})
    return table


def _cli_writes(call: ast.Call) -> bool:
    """A ``run`` / ``run_json`` whose argv is a literal list starting with a command that writes."""
    argv = call.args[0] if call.args else None
    if not isinstance(argv, ast.List):
        return False
    words = [a.value for a in argv.elts if isinstance(a, ast.Constant) and isinstance(a.value, str)]
    return any(tuple(words[: len(command)]) == command for command in CLI_WRITES)


def written_by(path: str, call: ast.Call) -> frozenset[str]:
    """The releases a call writes a state dir with (empty: it writes none)."""
    releases = writers().get(path, frozenset())
    if releases and path.rsplit(".", 1)[1] in ("run", "run_json") and not _cli_writes(call):
        return frozenset()
    return releases


# -- what a test file's tests reach ------------------------------------------------------------------------
def conftests_above(path: Path, tests: Path = TESTS) -> list[Path]:
    """tests/conftest.py down to the file's own folder's conftest.py (the nearer one last)."""
    chain = []
    folder = path.parent
    while folder == tests or tests in folder.parents:
        if (folder / "conftest.py").exists():
            chain.append(folder / "conftest.py")
        folder = folder.parent
    return chain[::-1]


@dataclass
class Reached:
    """What a test file's tests reach: the releases of OpenClaw that write their state, and whether they
    call the project's generator."""

    releases: set[str] = field(default_factory=set)
    generator: bool = False


def reached(path: Path, tests: Path = TESTS) -> Reached:
    """Follows each test of ``path`` through the functions of its module it calls and the fixtures it
    takes (its module's, else the nearest conftest's; autouse ones too), collecting the calls reached."""
    own = read_module(path)
    chain = [read_module(c) for c in conftests_above(path, tests)] + [own]
    fixtures: dict[str, tuple[Module, Function]] = {}
    for module in chain:  # a nearer definition wins, as in pytest
        fixtures |= {name: (module, f) for name, f in module.functions.items() if f.fixture}
    autouse = [entry for entry in fixtures.values() if entry[1].autouse]
    out = Reached()
    todo = [(own, test) for test in own.tests.values()] + autouse
    seen: set[int] = set()
    while todo:
        module, function = todo.pop()
        if id(function) in seen:
            continue
        seen.add(id(function))
        for name in function.params:
            if name in fixtures:
                todo.append(fixtures[name])
        for call_path, call in function.calls:
            out.releases |= written_by(call_path, call)
            out.generator |= call_path == GENERATOR or call_path.startswith(f"{GENERATOR}.")
            helper = module.functions.get(call_path)
            if helper is not None and not helper.fixture:
                todo.append((module, helper))
    return out


def false_claims(section: Section, root: Path) -> list[str]:
    """Each file the section lists under a claim about its state that its tests do not bear out."""
    tests = root / "tests"
    wrong = []
    for release, files in section.openclaw.items():
        for name in files:
            if release is None:
                wrong.append(f"{name}: 'state written by OpenClaw' names no release")
                continue
            found = reached(root / name, tests).releases
            if release not in found:
                wrote = f"OpenClaw {', '.join(sorted(found))}" if found else "no OpenClaw writer"
                wrong.append(f"{name}: on OpenClaw {release}'s state, reaches {wrote}")
    for name in section.generator:
        found = reached(root / name, tests)
        if not found.generator or found.releases:
            wrong.append(
                f"{name}: on the generator's, reaches it: {found.generator}, OpenClaw {found.releases}"
            )
    return wrong


def readme_section() -> Section:
    return parse(readme_tests_section(README.read_text()))


def test_every_test_file_or_folder_the_readme_names_exists():
    text = README.read_text()
    named = set(re.findall(r"`(tests(?:/[A-Za-z0-9_.-]+)*/?)`", text))
    section = readme_section()
    assert section.files, "the Tests section names no test file"
    missing = sorted(p for p in named | set(section.files) | set(section.folders) if not (ROOT / p).exists())
    assert missing == [], f"README.md names test files or folders that do not exist: {missing}"


def test_every_test_folder_has_its_bullet():
    folders = sorted(f"tests/{d.name}" for d in TESTS.iterdir() if d.is_dir() and any(d.glob("test_*.py")))
    assert sorted(readme_section().folders) == folders


def test_each_file_listed_on_a_state_is_built_on_that_state():
    section = readme_section()
    assert section.openclaw and all(section.openclaw.values()), "no file is listed on OpenClaw's state"
    assert section.generator, "no file is listed on the generator's state"
    assert false_claims(section, ROOT) == []


def test_the_releases_of_the_writers_are_those_tools_openclaw_pins():
    """Read from tools/openclaw, checked against the releases as this test states them: the 2026.9.6
    fixtures (the mixed state, the live state), 2026.7.35's JSONL-era state, and the checkpoint state that
    2026.7.35 writes and 2026.9.6's doctor migrates."""
    assert installers() == {
        "tools.openclaw.fixture.OpenClaw": "2026.9.6",
        "tools.openclaw.legacy.LegacyOpenClaw": "2026.7.35",
    }
    table = writers()
    assert {builder: set(table[builder]) for builder in BUILDERS} == {
        "tools.openclaw.fixture.openclaw_state": {"2026.9.6"},
        "tools.openclaw.fixture.built_fixture": {"2026.9.6"},
        "tools.openclaw.legacy.legacy_state": {"2026.7.35"},
        "tools.openclaw.legacy.built_fixture": {"2026.7.35"},
        "tools.openclaw.live.held_state": {"2026.9.6"},
        "tools.openclaw.checkpoint.checkpoint_state": {"2026.7.35", "2026.9.6"},
        "tools.openclaw.rewrite.rewrite_state": {"2026.9.6"},
        "tools.demo.rebuild.built_state": {"2026.7.35", "2026.9.6"},
    }


def test_the_section_is_parsed_into_its_claims():
    parsed = parse(
        "- `tests/e2e`: x\n  - on state written by OpenClaw 2026.9.6 itself: `test_a.py` (y), `test_b.py`.\n"
        "  - on state from the project's generator: `test_c.py`.\n"
        "  - on state written by OpenClaw 2026.7.35: `test_e.py`;"
        " on state written by OpenClaw: `test_f.py`.\n"
        "- `tests/unit`: `test_d.py`.\n"
    )
    assert parsed.openclaw == {
        "2026.9.6": ["tests/e2e/test_a.py", "tests/e2e/test_b.py"],
        "2026.7.35": ["tests/e2e/test_e.py"],
        None: ["tests/e2e/test_f.py"],
    }
    assert parsed.generator == ["tests/e2e/test_c.py"]
    assert parsed.folders == ["tests/e2e", "tests/unit"]
    assert set(parsed.files) == {
        f"tests/{p}"
        for p in (
            "e2e/test_a.py",
            "e2e/test_b.py",
            "e2e/test_c.py",
            "e2e/test_e.py",
            "e2e/test_f.py",
            "unit/test_d.py",
        )
    }


# A made-up tests folder: each file builds its state one way; the section below lists each under claims,
# some of them false.
MADE_UP = {
    "conftest.py": """
import pytest
from tools.openclaw.fixture import OpenClaw

@pytest.fixture
def migrated(tmp_path):
    OpenClaw.installed().run(["doctor", "--session-sqlite", "import"], state_dir=tmp_path)
    return tmp_path

@pytest.fixture
def listed(tmp_path):
    return OpenClaw.installed().run(["sessions", "--json"], state_dir=tmp_path)
""",
    "test_rows.py": """
import subprocess
from tools.openclaw.fixture import OpenClaw, agent_database, read_only

def write_rows(state):
    subprocess.run([str(OpenClaw.installed().node), "-e", "...", str(agent_database(state, "main"))])

def test_rows(tmp_path):
    write_rows(tmp_path)
    with read_only(agent_database(tmp_path, "main")) as db:
        assert db.execute("SELECT 1").fetchone()
""",
    "test_legacy.py": """
from tools.openclaw import legacy

def copy(dest):
    return legacy.legacy_state(dest)

def test_legacy(tmp_path):
    assert copy(tmp_path)["produced"]
""",
    "test_doctor.py": """
def test_doctor(migrated):
    assert migrated
""",
    "test_listed.py": """
from tools.demo.sample_state import make_state

def test_listed(listed, tmp_path):
    make_state(tmp_path, ["a"], completed=1)
    assert listed
""",
    "test_gateway.py": """
from tools.openclaw.legacy import LegacyOpenClaw

def test_gateway(tmp_path):
    oc = LegacyOpenClaw.installed()
    with oc.gateway(tmp_path, {}, tmp_path / "gw") as gw:
        assert gw.url
""",
    "test_generated.py": """
from tools.demo import sample_state

def test_generated(tmp_path):
    assert sample_state.make_state(tmp_path, ["a"], completed=1)
""",
}


def test_a_false_claim_fails_the_check(tmp_path):
    """Each false claim is named, each true one is not: hand-written rows (OpenClaw's helpers imported,
    its Node run) are no OpenClaw state; 2026.7.35's builder is not 2026.9.6 and 2026.9.6's doctor is
    not 2026.7.35; an OpenClaw listing writes nothing; a claim naming no release holds for nothing."""
    folder = tmp_path / "tests" / "e2e"
    folder.mkdir(parents=True)
    for name, source in MADE_UP.items():
        (folder / name).write_text(source)
    section = parse(
        "- `tests/e2e`: made up.\n"
        "  - On state written by OpenClaw 2026.7.35 itself: `test_rows.py`, `test_legacy.py`,"
        " `test_doctor.py`, `test_gateway.py`.\n"
        "  - On state written by OpenClaw 2026.9.6 itself: `test_rows.py`, `test_legacy.py`,"
        " `test_doctor.py`, `test_listed.py`.\n"
        "  - On state written by OpenClaw: `test_doctor.py`.\n"
        "  - On state from the project's generator: `test_generated.py`, `test_listed.py`,"
        " `test_doctor.py`.\n"
    )
    assert false_claims(section, tmp_path) == [
        "tests/e2e/test_rows.py: on OpenClaw 2026.7.35's state, reaches no OpenClaw writer",
        "tests/e2e/test_doctor.py: on OpenClaw 2026.7.35's state, reaches OpenClaw 2026.9.6",
        "tests/e2e/test_rows.py: on OpenClaw 2026.9.6's state, reaches no OpenClaw writer",
        "tests/e2e/test_legacy.py: on OpenClaw 2026.9.6's state, reaches OpenClaw 2026.7.35",
        "tests/e2e/test_listed.py: on OpenClaw 2026.9.6's state, reaches no OpenClaw writer",
        "tests/e2e/test_doctor.py: 'state written by OpenClaw' names no release",
        "tests/e2e/test_doctor.py: on the generator's, reaches it: False, OpenClaw {'2026.9.6'}",
    ]
    # The same files under true claims only: nothing is named.
    true = parse(
        "- `tests/e2e`: made up.\n"
        "  - On state written by OpenClaw 2026.7.35 itself: `test_legacy.py`, `test_gateway.py`.\n"
        "  - On state written by OpenClaw 2026.9.6 itself: `test_doctor.py`.\n"
        "  - On state from the project's generator: `test_generated.py`, `test_listed.py`.\n"
    )
    assert false_claims(true, tmp_path) == []
