"""The features, each a package with its chat commands beside its domain logic.

Each feature declares `SPECS` (its commands) and `TITLE` (the heading `help` lists them
under); one whose commands plan changes declares, by plan kind, `RUNNERS` (the job body
that runs a plan from its state alone), `PRECHECKS` (what differs between the world now and
a plan's `from` state) and may declare `RESUMERS` (what takes its jobs over when the replica
running them stopped) and `CANCELLERS` (what `cancel JOB` offers instead of stopping the job
where it is); the registry lists them here, in the order `help` shows them.
"""

from __future__ import annotations

from bot.spec import Registry
from commands import admin, capacity, database, deploy, events

FEATURES = (deploy, capacity, database, events, admin)


def build_registry() -> Registry:
    registry = Registry()
    for feature in FEATURES:
        for spec in feature.SPECS:
            registry.add(spec, group=getattr(feature, "TITLE", "other"))
        registry.resumers.update(getattr(feature, "RESUMERS", {}))
        registry.runners.update(getattr(feature, "RUNNERS", {}))
        registry.prechecks.update(getattr(feature, "PRECHECKS", {}))
        registry.cancellers.update(getattr(feature, "CANCELLERS", {}))
    return registry
