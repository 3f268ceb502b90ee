"""The README's Tests section, held to the test files (read with ``ast``; nothing is imported or run).

- Every test file or folder the README names (anywhere in it) exists: a path under ``tests/``, or in the
  Tests section a bare ``test_*.py`` name, which lives in the folder of the bullet it is in.
- Every folder under ``tests/`` holding test files has its bullet in the section.
- A file listed after "state written by OpenClaw" (up to the end of its bullet) builds its state with
  OpenClaw: it imports from ``tools.openclaw.fixture``, or takes a pytest fixture (from its own module or a
  ``conftest.py`` above it) that does, directly or through other fixtures. A file listed after "state from
  the project's generator" imports ``tools.demo.sample_state`` and never OpenClaw.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

from tools.stacks.sandbox import ROOT

README = ROOT / "README.md"
TESTS = ROOT / "tests"
OPENCLAW = "tools.openclaw.fixture"
GENERATOR = "tools.demo.sample_state"
OPENCLAW_CLAIM = "state written by OpenClaw"
GENERATOR_CLAIM = "state from the project's generator"


@dataclass
class Section:
    """What the Tests section says: the folders with a bullet, each named test file (path -> the folder
    bullet it is in), and the files under each claim about their state."""

    folders: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    openclaw: list[str] = field(default_factory=list)
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


def parse(section: str) -> Section:
    out = Section()
    folder = None
    for indent, text in bullets(section):
        head = re.match(r"`(tests/[a-z0-9_]+)`", text)
        if indent == 0 and head:
            folder = head.group(1)
            out.folders.append(folder)
        names = [name for name in re.findall(r"`([^`]+\.py)`", text) if Path(name).name.startswith("test_")]
        for name in names:
            path = name if "/" in name else f"{folder}/{name}"
            out.files.setdefault(path, folder or "")
        for claim, other, into in (
            (OPENCLAW_CLAIM, GENERATOR_CLAIM, out.openclaw),
            (GENERATOR_CLAIM, OPENCLAW_CLAIM, out.generator),
        ):
            at = text.find(claim)
            if at >= 0:  # the files named after the claim, up to the other claim or the bullet's end
                end = text.find(other, at)
                after = re.findall(r"`([^`]+\.py)`", text[at : end if end > at else None])
                into += [
                    n if "/" in n else f"{folder}/{n}" for n in after if Path(n).name.startswith("test_")
                ]
    return out


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


def imports_from(tree: ast.Module, module: str) -> set[str]:
    """The names the module's imports bind from ``module`` (or to it)."""
    return {
        name
        for name, origin in imported_modules(tree).items()
        if origin == module or origin.startswith(f"{module}.")
    }


def _is_fixture(node: ast.FunctionDef) -> bool:
    for decorator in node.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        if isinstance(target, ast.Attribute) and target.attr == "fixture":
            return True
    return False


def fixtures_using_openclaw(files: list[Path]) -> set[str]:
    """The fixtures defined in these modules that use a name imported from tools.openclaw.fixture, or
    take such a fixture (to a fixed point: the later file's definitions win, as pytest's nearer conftest)."""
    defined: dict[str, tuple[set[str], bool]] = {}
    for path in files:
        tree = ast.parse(path.read_text())
        from_openclaw = imports_from(tree, OPENCLAW)
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and _is_fixture(node):
                used = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
                defined[node.name] = ({a.arg for a in node.args.args}, bool(used & from_openclaw))
    using = {name for name, (_, direct) in defined.items() if direct}
    while True:
        more = {name for name, (args, _) in defined.items() if args & using} - using
        if not more:
            return using
        using |= more


def conftests_above(path: Path) -> list[Path]:
    """tests/conftest.py down to the file's own folder's conftest.py (the nearer one last)."""
    chain = []
    folder = path.parent
    while folder == TESTS or TESTS in folder.parents:
        if (folder / "conftest.py").exists():
            chain.append(folder / "conftest.py")
        folder = folder.parent
    return chain[::-1]


def uses_openclaw(path: Path) -> bool:
    tree = ast.parse(path.read_text())
    if imports_from(tree, OPENCLAW):
        return True
    fixtures = fixtures_using_openclaw([*conftests_above(path), path])
    requested = {
        arg.arg
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
        for arg in node.args.args
    }
    return bool(requested & fixtures)


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


def test_the_files_on_state_written_by_openclaw_build_it_with_openclaw():
    section = readme_section()
    assert section.openclaw, f"no file is listed under '{OPENCLAW_CLAIM}'"
    not_openclaw = [name for name in section.openclaw if not uses_openclaw(ROOT / name)]
    assert not_openclaw == [], (
        f"listed under '{OPENCLAW_CLAIM}' but not built with {OPENCLAW}: {not_openclaw}"
    )


def test_the_files_on_the_generators_state_use_the_generator_and_not_openclaw():
    section = readme_section()
    assert section.generator, f"no file is listed under '{GENERATOR_CLAIM}'"
    wrong = [
        name
        for name in section.generator
        if not imports_from(ast.parse((ROOT / name).read_text()), GENERATOR) or uses_openclaw(ROOT / name)
    ]
    assert wrong == [], f"listed under '{GENERATOR_CLAIM}' but built otherwise: {wrong}"


def test_the_checks_above_can_tell():
    """The rules themselves, on the files they must tell apart: test_nemoclaw.py (the generator only)
    and a file that takes OpenClaw's state through its folder's conftest fixture only."""
    assert not uses_openclaw(TESTS / "e2e" / "test_nemoclaw.py")
    assert uses_openclaw(TESTS / "e2e" / "test_sqlite_mixed.py")  # imports it
    assert "migrated" in fixtures_using_openclaw(conftests_above(TESTS / "e2e" / "test_sqlite_faults.py"))
    parsed = parse(
        "- `tests/e2e`: x\n  - on state written by OpenClaw itself: `test_a.py` (y), `test_b.py`.\n"
        "  - on state from the project's generator: `test_c.py`.\n- `tests/unit`: `test_d.py`.\n"
    )
    assert parsed.openclaw == ["tests/e2e/test_a.py", "tests/e2e/test_b.py"]
    assert parsed.generator == ["tests/e2e/test_c.py"]
    assert parsed.folders == ["tests/e2e", "tests/unit"]
    assert set(parsed.files) == {
        f"tests/{p}" for p in ("e2e/test_a.py", "e2e/test_b.py", "e2e/test_c.py", "unit/test_d.py")
    }
