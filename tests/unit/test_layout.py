"""The layout tells the request path: no import cycle among the project's modules, the
kernel imports no feature, adapter or sandbox, and nothing is wired by name."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("bot", "commands", "adapters", "sandbox")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {
        _module_name(path): path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    }


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The project module an import names: the module itself, or the package it is in."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def _imports(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Every project module `module` imports, under TYPE_CHECKING and inside functions too."""
    found: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from commands import deploy` imports the module commands.deploy; a name that
            # is not a module comes from the package or module `base` itself.
            names = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                for alias in node.names
            ]
        for name in names:
            target = _resolve(name, modules)
            if target is not None and target != module:
                found.add(target)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {module: _imports(module, path, modules) for module, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def _is_in(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_no_import_cycle_among_the_projects_modules() -> None:
    cycle = _cycle(_graph())
    assert cycle is None, " -> ".join(cycle or [])


def test_the_kernel_imports_no_feature_adapter_or_sandbox() -> None:
    wrong = {
        f"{module} imports {target}"
        for module, targets in _graph().items()
        if _is_in(module, "bot")
        for target in targets
        if not _is_in(target, "bot")
    }
    assert not wrong, sorted(wrong)


def test_features_depend_on_ports_not_on_adapters_or_the_sandbox() -> None:
    wrong = {
        f"{module} imports {target}"
        for module, targets in _graph().items()
        if _is_in(module, "commands")
        for target in targets
        if _is_in(target, "adapters") or _is_in(target, "sandbox")
    }
    assert not wrong, sorted(wrong)


def test_only_the_composition_root_builds_features_and_driven_adapters() -> None:
    driven = ("adapters.aws", "adapters.store", "adapters.tunnel", "adapters.prometheus")
    wrong = set()
    for module, targets in _graph().items():
        if not _is_in(module, "adapters") or module == "adapters.bootstrap":
            continue
        for target in targets:
            if _is_in(target, "commands") or (
                target == "adapters.bootstrap" and module != "adapters.cli"
            ):
                wrong.add(f"{module} imports {target}")
            inside = any(_is_in(module, d) for d in driven)
            if not inside and any(_is_in(target, d) for d in driven) and module != "adapters.cli":
                wrong.add(f"{module} imports {target}")
    assert not wrong, sorted(wrong)


def test_nothing_is_wired_by_name() -> None:
    pattern = re.compile(r"__import__|import_module|extra\[|\.port\(")
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for package in ("bot", "commands", "adapters")
        for path in sorted((ROOT / package).rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert not found, found


def test_every_plan_kind_has_a_runner_and_a_precheck() -> None:
    from commands import build_registry

    registry = build_registry()
    kinds = {"deploy", "rollback", "scale-ecs", "scale-asg", "scale-fleet-out", "scale-fleet-in"}
    kinds |= {"resize-fleet", "resize-database"}
    assert kinds <= set(registry.runners)
    assert set(registry.prechecks) == set(registry.runners)
    assert set(registry.resumers) <= set(registry.runners)
