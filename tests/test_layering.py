"""The house's import rules, checked over every module (docs/design.md, "Rooms and who may call whom").

Imports are read with ``ast`` from every module of ``flows/``, ``tasks/``, ``expectations/``,
``warehouse/`` and ``duikou_settings.py``; imports inside functions count like top-level ones (a
function-level import hides a cycle, it does not remove it). Checked:

* no import cycle anywhere (strongly connected components of the module graph);
* each room imports only the rooms its row of :data:`MAY_IMPORT` names (``docs/design.md`` holds the
  same table; a test keeps them equal);
* nothing outside ``tasks/demo/`` (and ``flows/``' demo command) imports the demo;
* Prefect is imported only by the modules in :data:`PREFECT_MODULES`;
* no module is named like a standard-library module (``numbers``, ``operator``, ``site``).

The checker itself is tested on a small planted tree: a cycle and a forbidden import are found.
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TOP_LEVEL = ("flows", "tasks", "expectations", "warehouse")

#: room → the rooms it may import (a module may always import its own room). A room is the longest
#: prefix of a module's dotted name found in this table.
MAY_IMPORT: dict[str, frozenset[str]] = {
    "duikou_settings": frozenset(),
    "expectations": frozenset({"duikou_settings"}),
    "warehouse": frozenset({"duikou_settings", "expectations"}),
    "tasks": frozenset(),  # tasks/__init__.py only: every module lives in a room below
    "tasks.retry_policy": frozenset(),  # which failures a task retries: plain data, imports nothing of ours
    "tasks.files": frozenset(),  # atomic file writes: imports nothing of ours
    "tasks.forms": frozenset({"duikou_settings", "expectations"}),
    "tasks.validation": frozenset({"duikou_settings", "expectations", "warehouse", "tasks.forms"}),
    "tasks.landing": frozenset({"duikou_settings", "tasks.files", "warehouse"}),  # the submission key, the ledger
    "tasks.accounts": frozenset({"duikou_settings", "warehouse"}),  # who acts: accounts, roles, sign-in, sessions
    "tasks.submission": frozenset({"duikou_settings", "expectations", "warehouse", "tasks.retry_policy", "tasks.files",
                                   "tasks.forms", "tasks.validation", "tasks.landing"}),
    "tasks.registry": frozenset({"duikou_settings", "expectations", "warehouse", "tasks.retry_policy", "tasks.forms",
                                 "tasks.validation", "tasks.submission", "tasks.landing"}),
    "tasks.report": frozenset({"duikou_settings", "expectations", "warehouse", "tasks.retry_policy", "tasks.files"}),
    "tasks.releases": frozenset({"duikou_settings", "expectations", "warehouse", "tasks.files", "tasks.accounts",
                                 "tasks.report"}),
    "tasks.demo": frozenset({"duikou_settings", "expectations", "warehouse", "tasks.forms", "tasks.validation",
                             "tasks.landing", "tasks.submission", "tasks.registry", "tasks.report"}),
    "flows": frozenset({"duikou_settings", "expectations", "warehouse", "tasks"}),
}

#: the only modules that import Prefect: flows, and each package's thin task wrappers
PREFECT_MODULES = re.compile(r"^(flows\..+|tasks\.[a-z_]+\.([a-z_]+_)?steps|tasks\.submission\.writer_slots)$")


@dataclass(frozen=True)
class Violation:
    module: str
    imported: str
    rule: str

    def __str__(self) -> str:
        return f"{self.module} imports {self.imported}: {self.rule}"


def module_names(root: Path, tops: Iterable[str] = TOP_LEVEL) -> dict[str, Path]:
    """Dotted name → file of every module under the top-level packages (migrations' scripts aside)."""
    found: dict[str, Path] = {}
    for top in tops:
        for path in sorted((root / top).rglob("*.py")):
            rel = path.relative_to(root)
            if "migrations" in rel.parts:
                continue
            parts = list(rel.with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    if (root / "duikou_settings.py").exists():
        found["duikou_settings"] = root / "duikou_settings.py"
    return found


def imports_of(name: str, path: Path) -> set[str]:
    """Every dotted name ``path`` imports, at any depth (function-level imports included)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            out.add(base)
            out.update(f"{base}.{alias.name}" for alias in node.names)
    return out


def import_graph(root: Path) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(our module → our modules it imports, our module → every top-level name it imports)."""
    modules = module_names(root)
    ours: dict[str, set[str]] = {}
    every: dict[str, set[str]] = {}
    for name, path in modules.items():
        imported = imports_of(name, path)
        every[name] = {dotted.split(".")[0] for dotted in imported}
        ours[name] = {dotted for dotted in imported if dotted in modules and dotted != name}
    return ours, every


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, Iterable[str]]] = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def room_of(module: str, rooms: Iterable[str] = MAY_IMPORT) -> str | None:
    candidates = [room for room in rooms if module == room or module.startswith(room + ".")]
    return max(candidates, key=len) if candidates else None


def violations(root: Path) -> list[Violation]:
    graph, every = import_graph(root)
    out: list[Violation] = []
    for component in cycles(graph):
        out.append(Violation(component[0], " → ".join(component), "import cycle"))
    for module, imported in sorted(graph.items()):
        room = room_of(module)
        if room is None:
            out.append(Violation(module, "-", "module in no room of MAY_IMPORT"))
            continue
        for target in sorted(imported):
            target_room = room_of(target)
            if target_room is None or target_room == room:
                continue
            allowed = MAY_IMPORT[room]
            if not any(target_room == a or target_room.startswith(a + ".") for a in allowed):
                out.append(Violation(module, target, f"{room} may import only {sorted(allowed) or 'nothing of ours'}"))
            if room_of(target, ("tasks.demo",)) and room not in ("tasks.demo", "flows"):
                out.append(Violation(module, target, "only tasks/demo/ and flows' demo command import the demo"))
    for module, tops in sorted(every.items()):
        if "prefect" in tops and not PREFECT_MODULES.match(module):
            out.append(Violation(module, "prefect", "Prefect only in flows/ and the tasks' steps modules"))
    return out


def test_the_house_keeps_its_import_rules() -> None:
    found = violations(REPO)
    assert not found, "\n".join(map(str, found))


def stdlib_named(root: Path) -> list[str]:
    """Modules whose own name is a standard-library module's (``numbers``, ``operator``, ``site``): a
    reader cannot tell at the import which one is meant."""
    return sorted(name for name in module_names(root) if name.rpartition(".")[2] in sys.stdlib_module_names)


def test_no_module_is_named_like_a_standard_library_module() -> None:
    assert stdlib_named(REPO) == []


def test_the_design_doc_states_the_same_rules() -> None:
    text = (REPO / "docs" / "design.md").read_text(encoding="utf-8")
    section = text.split("### Who may import whom", 1)[1].split("\n## ", 1)[0]
    rows = dict(re.findall(r"^\|\s*`([a-z_.]+)`\s*\|\s*([^|]*?)\s*\|", section, flags=re.MULTILINE))
    assert set(rows) == set(MAY_IMPORT), f"rooms in docs/design.md {sorted(rows)} vs the test {sorted(MAY_IMPORT)}"
    for room, allowed in MAY_IMPORT.items():
        stated = {name for name in re.findall(r"`([a-z_.]+)`", rows[room].split("(")[0])}
        assert stated == set(allowed), f"{room}: docs say {sorted(stated)}, the test {sorted(allowed)}"


def _plant(root: Path, files: Mapping[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    for top in TOP_LEVEL:
        (root / top).mkdir(exist_ok=True)
        (root / top / "__init__.py").touch()
    (root / "duikou_settings.py").touch()
    return root


def test_a_module_named_like_the_standard_library_is_found(tmp_path: Path) -> None:
    root = _plant(tmp_path, {"tasks/forms/__init__.py": "", "tasks/forms/numbers.py": "", "flows/operator.py": ""})
    assert stdlib_named(root) == ["flows.operator", "tasks.forms.numbers"]


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"tasks/forms/__init__.py": "", "tasks/forms/read.py": "def f():\n    from tasks.forms import layout\n",
          "tasks/forms/layout.py": "from tasks.forms.read import f\n"}, "import cycle"),
        ({"warehouse/load.py": "def f():\n    from tasks.forms import read\n",
          "tasks/forms/__init__.py": "", "tasks/forms/read.py": ""}, "warehouse may import only"),
        ({"tasks/landing/__init__.py": "", "tasks/landing/store.py": "import flows.cli\n",
          "flows/cli.py": ""}, "tasks.landing may import only"),
        ({"tasks/report/__init__.py": "", "tasks/report/page.py": "from tasks.demo.data import x\n",
          "tasks/demo/__init__.py": "", "tasks/demo/data.py": "x = 1\n"}, "import the demo"),
        ({"tasks/forms/__init__.py": "", "tasks/forms/read.py": "from prefect import task\n"},
         "Prefect only"),
    ],
    ids=["cycle-behind-a-function-import", "warehouse-imports-tasks", "tasks-import-flows", "report-imports-demo",
         "prefect-outside-steps"],
)
def test_the_checker_finds_a_planted_fault(tmp_path: Path, files: dict[str, str], expected: str) -> None:
    found = violations(_plant(tmp_path, files))
    assert any(expected in str(v) for v in found), [str(v) for v in found]
    clean = _plant(tmp_path / "clean", {"tasks/forms/__init__.py": "", "tasks/forms/read.py": "import os\n"})
    assert violations(clean) == []
