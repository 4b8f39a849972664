"""Layering of the targets below the validation package, checked on the import graph read from the source (AST).

The exact laws a test checks against sit below the tests: no module under ``sdekit/targets`` may reach
``sdekit.validate`` through its imports (module-level or inside functions), and the targets and the laws the
one-sample tests use share no import cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import sdekit
import sdekit.validate.laws as laws

PACKAGE = Path(sdekit.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """sdekit module -> the sdekit modules it imports anywhere in its source (`from a.b import c` counts a.b.c
    when that is a module, else a.b)."""
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        is_package = path.name == "__init__.py"
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = name if is_package else name.rpartition(".")[0]
                    for _ in range(node.level - 1):
                        anchor = anchor.rpartition(".")[0]
                    base = f"{anchor}.{base}" if base else anchor
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names]
            else:
                continue
            for target in targets:
                while target and target not in files:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    edges.add(target)
        graph[name] = edges
    return graph


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every module reachable from `start` through imports (start excluded unless on a cycle)."""
    seen: set[str] = set()
    stack = list(graph[start])
    while stack:
        m = stack.pop()
        if m not in seen:
            seen.add(m)
            stack.extend(graph.get(m, ()))
    return seen


def test_targets_never_import_the_validation_package() -> None:
    graph = import_graph()
    targets = [m for m in graph if m == "sdekit.targets" or m.startswith("sdekit.targets.")]
    assert len(targets) >= 7, targets
    for m in targets:
        upward = sorted(r for r in reachable(graph, m) if r.startswith("sdekit.validate"))
        assert not upward, f"{m} reaches {upward}"


def test_laws_and_targets_share_no_cycle() -> None:
    graph = import_graph()
    for m in ("sdekit.validate.laws", "sdekit.targets", "sdekit.targets.law1d", "sdekit.targets.double_well"):
        assert m not in reachable(graph, m), f"{m} is on an import cycle"


def test_law1d_is_reexported_for_compatibility() -> None:
    from sdekit.targets.law1d import Law1D, gaussian_raw_moments
    from sdekit.validate import Law1D as ValidateLaw1D

    assert laws.Law1D is Law1D is ValidateLaw1D and laws.gaussian_raw_moments is gaussian_raw_moments
