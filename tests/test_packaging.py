"""Packaging: every third-party module the code imports is a declared dependency, and every data
file beside the code is shipped.

The imports are read with ``ast`` from every module (function-level imports and
``pytest.importorskip("…")`` / ``importlib.import_module("…")`` with a literal name included) and
mapped to the distributions that provide them with ``importlib.metadata.packages_distributions()``.
The code that ships (flows/, tasks/, expectations/, warehouse/, duikou_settings.py) may use only
``[project] dependencies``; tests/ and bench/ may also use the ``dev`` extra. A module a
dependency only brings along (numpy through GX, httpx through Prefect) does not count: when that
dependency drops it, ``pip install duikou`` breaks.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from collections.abc import Iterator
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))

SHIPPED = ("flows", "tasks", "expectations", "warehouse", "duikou_settings.py")
DEV_ONLY = ("tests", "bench")
FIRST_PARTY = {"flows", "tasks", "expectations", "warehouse", "duikou_settings", "tests", "bench"}
# Calls whose first literal argument is a module name imported at run time.
IMPORT_CALLS = {"importorskip", "import_module"}


def _python_files(*roots: str) -> Iterator[Path]:
    for name in roots:
        path = ROOT / name
        if path.is_file():
            yield path
        else:
            yield from (p for p in sorted(path.rglob("*.py")) if "__pycache__" not in p.parts)


def _dev_modules() -> dict[str, set[str]]:
    """Each module name under tests/ and bench/ → its dotted paths from the repository root. None of
    them is importable by its bare name: tests/ and its folders are packages (pytest puts the
    repository root on sys.path, not tests/), so a helper is imported as ``tests.helpers.…``, a
    fixture of conftest as ``tests.conftest``; bench/ puts the root on sys.path for ``tests.…`` and
    ``bench.…``."""
    modules: dict[str, set[str]] = {}
    for path in _python_files(*DEV_ONLY):
        parts = path.relative_to(ROOT).with_suffix("").parts
        for i in range(1, len(parts)):
            modules.setdefault(parts[i], set()).add(".".join(parts[: i + 1]))
    return modules


def _imports(path: Path) -> Iterator[tuple[str, int]]:
    """(top-level module, line) of every absolute import in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name.split(".")[0], node.lineno
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.split(".")[0], node.lineno
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            first = node.args[0]
            if called in IMPORT_CALLS and isinstance(first, ast.Constant) and isinstance(first.value, str):
                yield first.value.split(".")[0], node.lineno


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_names(requirements: list[str]) -> set[str]:
    names = set()
    for requirement in requirements:
        match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
        assert match, f"pyproject.toml: cannot read the requirement {requirement!r}"
        names.add(_canonical(match.group(1)))
    return names


RUNTIME = _requirement_names(PYPROJECT["project"]["dependencies"])
DEV = RUNTIME | _requirement_names(PYPROJECT["project"]["optional-dependencies"]["dev"])


def _undeclared(roots: tuple[str, ...], declared: set[str], where: str) -> list[str]:
    providers = packages_distributions()
    dev_modules = _dev_modules()
    problems = []
    for path in _python_files(*roots):
        for module, line in _imports(path):
            if module in sys.stdlib_module_names or module in FIRST_PARTY:
                continue
            dists = {_canonical(d) for d in providers.get(module, [])}
            if not dists and module in dev_modules:
                problems.append(
                    f"{path.relative_to(ROOT)}:{line}: {module} is a module of tests/ or bench/: import it by "
                    f"its path from the repository root ({' or '.join(sorted(dev_modules[module]))})"
                )
            elif not dists:
                problems.append(f"{path.relative_to(ROOT)}:{line}: {module} is not installed by any distribution")
            elif not dists & declared:
                problems.append(
                    f"{path.relative_to(ROOT)}:{line}: {module} (from {', '.join(sorted(dists))}) "
                    f"is not in pyproject.toml {where}"
                )
    return problems


def test_shipped_code_imports_only_declared_dependencies() -> None:
    problems = _undeclared(SHIPPED, RUNTIME, "[project] dependencies")
    assert not problems, "\n".join(problems)


def test_tests_and_bench_import_only_declared_dependencies() -> None:
    problems = _undeclared(DEV_ONLY, DEV, "[project] dependencies or the dev extra")
    assert not problems, "\n".join(problems)


def test_the_scan_sees_function_level_and_optional_imports(tmp_path: Path) -> None:
    """The walker finds what a top-of-file grep would miss."""
    module = tmp_path / "sample.py"
    module.write_text(
        "import os\n"
        "def f():\n"
        "    import xlwt\n"
        "    from jinja2 import Environment\n"
        "    from . import sibling\n"
        "pw = pytest.importorskip('playwright.sync_api')\n",
        encoding="utf-8",
    )
    assert sorted(m for m, _ in _imports(module)) == ["jinja2", "os", "playwright", "xlwt"]


@pytest.mark.parametrize("package", ["flows", "tasks", "expectations", "warehouse"])
def test_every_data_file_beside_the_code_is_package_data(package: str) -> None:
    """A file the code reads from beside itself (declarations, reference tables, migration
    templates) ships in the wheel only when its suffix is in ``[tool.setuptools.package-data]``."""
    globs = [g for patterns in PYPROJECT["tool"]["setuptools"]["package-data"].values() for g in patterns]
    missing = [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / package).rglob("*"))
        if path.is_file()
        and "__pycache__" not in path.parts
        and path.suffix not in {".py", ".pyc"}
        and not any(path.match(g) for g in globs)
    ]
    assert not missing, f"not shipped by pyproject.toml package-data: {missing}"


def test_packages_are_found_by_discovery() -> None:
    """Subpackages (tasks/forms/ …) need no entry: setuptools finds everything under the four."""
    setuptools = PYPROJECT["tool"]["setuptools"]
    assert "packages" not in setuptools or "find" in setuptools["packages"]
    include = setuptools["packages"]["find"]["include"]
    assert sorted(include) == ["expectations*", "flows*", "tasks*", "warehouse*"]
