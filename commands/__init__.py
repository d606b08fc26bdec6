"""The features, each a package with its chat commands beside its domain logic.

Each feature declares `SPECS` (its commands), `TITLE` (the heading `help` lists them under)
and may declare `RESUMERS` (by plan kind, what takes its jobs over when the replica running
them stopped); the registry lists them here, in the order `help` shows them.
"""

from __future__ import annotations

from bot.spec import Registry
from commands import admin, capacity, database, deploy

FEATURES = (deploy, capacity, database, admin)


def build_registry() -> Registry:
    registry = Registry()
    for feature in FEATURES:
        for spec in feature.SPECS:
            registry.add(spec, group=getattr(feature, "TITLE", "other"))
        registry.resumers.update(getattr(feature, "RESUMERS", {}))
    return registry
