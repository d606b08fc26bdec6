"""One module per chat command; each declares `SPECS`, found here by module discovery."""

from __future__ import annotations

import importlib
import pkgutil

from bot.spec import CommandSpec, Registry


def all_specs() -> list[CommandSpec]:
    specs: list[CommandSpec] = []
    for module_info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if module_info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        specs.extend(getattr(module, "SPECS", []))
    return specs


def build_registry() -> Registry:
    registry = Registry()
    for spec in all_specs():
        registry.add(spec)
    # A module that can resume its jobs on another replica declares `RESUMERS` by plan kind.
    for module_info in pkgutil.iter_modules(__path__):
        if not module_info.name.startswith("_"):
            module = importlib.import_module(f"{__name__}.{module_info.name}")
            registry.resumers.update(getattr(module, "RESUMERS", {}))
    return registry
