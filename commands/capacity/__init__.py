"""Capacity: scale out, scale up, limits, status, and the quota watcher."""

from commands.capacity import limits, scale, status

SPECS = [*scale.SPECS, *limits.SPECS, *status.SPECS]
RUNNERS = scale.RUNNERS
PRECHECKS = scale.PRECHECKS

TITLE = "capacity"

__all__ = ["PRECHECKS", "RUNNERS", "SPECS", "TITLE"]
