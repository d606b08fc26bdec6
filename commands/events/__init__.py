"""AWS events and alarms in chat: formatting, routing, remediation buttons, noise control
(`intake`), and `events [ENV]`, what AWS has scheduled (`upcoming`)."""

from commands.events import upcoming

SPECS = [*upcoming.SPECS]
TITLE = "events"

__all__ = ["SPECS", "TITLE"]
