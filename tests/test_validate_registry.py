"""The registry behind `sdekit validate`: one name per check everywhere, and no import cycle among the validation
modules (the check modules share the registry, which sits below them)."""

import ast
from pathlib import Path

import pytest

import sdekit
from sdekit.cli import main
from sdekit.validate import suite
from sdekit.validate.sampler_checks import SAMPLER_CASES

ROOT = Path(sdekit.__file__).resolve().parents[1]


def test_list_prints_every_check_in_suite_order(capsys):
    assert main(["validate", "--list"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert listed == list(suite.SUITE)


def _registered_check_functions():
    """(module file, registered name, function node) for every check registered by decorator."""
    for module in ("closed_form", "suite", "mcmc_checks"):
        path = ROOT / "sdekit" / "validate" / f"{module}.py"
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef):
                for deco in node.decorator_list:
                    if isinstance(deco, ast.Call) and getattr(deco.func, "id", "") in ("register", "_register"):
                        yield module, deco.args[0].value, node


def test_every_check_function_names_its_report_after_its_key():
    """At the source: each registered function passes its key (the name --list prints) as the report's name."""
    seen = list(_registered_check_functions())
    table = [case.name for case in SAMPLER_CASES]  # registered from a table: the key is passed as the report name
    assert sorted([name for _, name, _ in seen] + table) == sorted(suite.SUITE)
    for module, name, fn in seen:
        body = ast.Module(body=fn.body, type_ignores=[])  # not the decorator, which holds the key anyway
        strings = {n.value for n in ast.walk(body) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
        assert name in strings, f"{module}.{fn.name} is registered as {name!r} but never uses that name"


def _validate_imports() -> dict[str, set[str]]:
    """module -> the sdekit.validate modules it imports (anywhere in the file), from the AST."""
    folder = ROOT / "sdekit" / "validate"
    modules = {p.stem for p in folder.glob("*.py") if p.stem != "__init__"}
    graph: dict[str, set[str]] = {}
    for name in modules:
        deps = set()
        for node in ast.walk(ast.parse((folder / f"{name}.py").read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "sdekit.validate":
                deps |= {a.name for a in node.names if a.name in modules}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sdekit.validate."):
                deps.add(node.module.split(".")[2])
            elif isinstance(node, ast.Import):
                deps |= {a.name.split(".")[2] for a in node.names if a.name.startswith("sdekit.validate.")}
        graph[name] = deps
    return graph


def test_no_import_cycle_among_validate_modules():
    graph = _validate_imports()
    assert "suite" in graph["power"] and "report" in graph["compare"]  # the scan sees imports
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph[node]):
            assert state.get(dep) != 1, f"import cycle: {' -> '.join([*stack, node, dep])}"
            if dep not in state:
                visit(dep, [*stack, node])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [])


def test_a_name_registered_in_two_tables_is_refused():
    from sdekit.validate.registry import Check, join_tables

    check = Check("same", "none", lambda n, s, a: None)
    assert list(join_tables({"same": check}, {"other": check})) == ["same", "other"]
    with pytest.raises(ValueError, match="'same' is registered twice"):
        join_tables({"same": check}, {"same": check})
