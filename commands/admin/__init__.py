"""The bot about itself: help, approve/deny, cancel, lock/unlock, history and jobs."""

from commands.admin import approval, cancel, help, locking, records

SPECS = [*help.SPECS, *approval.SPECS, *cancel.SPECS, *locking.SPECS, *records.SPECS]

TITLE = "guardrails and records"

__all__ = ["SPECS", "TITLE"]
