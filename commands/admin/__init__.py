"""The bot about itself: help, approve/deny, lock/unlock, history and jobs."""

from commands.admin import approval, help, locking, records

SPECS = [*help.SPECS, *approval.SPECS, *locking.SPECS, *records.SPECS]

TITLE = "guardrails and records"

__all__ = ["SPECS", "TITLE"]
