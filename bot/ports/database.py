"""The database ports: read-only sessions through the bastion, and one-off read-only queries.

Both hand out access as a temporary database user that can only SELECT, reached through an
SSH tunnel; the adapter behind them creates and drops those users with the admin secret.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Protocol

from bot.config import AwsScope, Config, Database
from bot.model import DbSessionRecord, Origin


@dataclass(frozen=True)
class DatabaseTarget:
    """One configured database: `main` in `staging`, and where its secrets live."""

    name: str
    env: str
    region: str
    config: Database

    @property
    def scope(self) -> AwsScope:
        return AwsScope(self.env, self.region)

    def __str__(self) -> str:
        return f"{self.name}/{self.env}"


def database_target(config: Config, name: str, env: str) -> DatabaseTarget:
    """The configured database `name` in `env`; Refused when either is unknown."""
    environment = config.environment(env)
    return DatabaseTarget(
        name=name, env=env, region=environment.region, config=config.database(name, env)
    )


@dataclass(frozen=True)
class SessionGrant:
    """What the member who opened a session gets, and only they: where and how to connect."""

    record: DbSessionRecord
    password: str
    schema: str

    @property
    def host(self) -> str:
        return self.record.host

    @property
    def port(self) -> int:
        return self.record.port

    @property
    def user(self) -> str:
        return self.record.user

    @property
    def expires_at(self) -> datetime:
        return self.record.expires_at


class DatabaseSessions(Protocol):
    """Open, close and list read-only sessions; each ends by itself at its expiry."""

    async def open(
        self, target: DatabaseTarget, *, member: str, origin: Origin, duration: timedelta
    ) -> SessionGrant:
        """Tunnel, temporary user and listener, ready to use; nothing is left on failure."""

    async def close(self, session_id: int, *, reason: str, by: Origin) -> DbSessionRecord:
        """Close the listener and its connections and drop the user; Refused if unknown.

        The channel the session was opened in is told, unless `by` is that same place.
        """

    async def list_open(self) -> list[DbSessionRecord]:
        """Open sessions, of this replica and any other sharing the store."""


class ResultCut(Enum):
    """Why `QueryResult.rows` is not the whole result: the config key that stopped it."""

    ROW_LIMIT = "row_limit"  # more rows than that; `rows` holds the first `row_limit`
    MAX_RESULT_BYTES = "max_result_bytes"  # the next row would have gone over that budget


@dataclass(frozen=True)
class CutValue:
    """A cell longer than `max_cell_bytes`: its first bytes, shown with a trailing "…"."""

    head: str | bytes


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple[object, ...]]  # a cell is a CutValue where it was cut
    elapsed: timedelta
    cut: ResultCut | None = None  # None when every row was read
    cut_cells: int = 0

    @property
    def truncated(self) -> bool:
        return self.cut is not None


class ReadQueries(Protocol):
    async def run(self, target: DatabaseTarget, statement: str, *, member: str) -> QueryResult:
        """Run one statement already checked as a read, as a temporary SELECT-only user."""
