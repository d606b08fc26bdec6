"""Read-only database access: `db open/close/list`, one-off `sql`, and the SQL guard."""

from commands.database import sessions, sql

SPECS = [*sessions.SPECS, *sql.SPECS]

TITLE = "database"

__all__ = ["SPECS", "TITLE"]
