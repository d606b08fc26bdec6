"""Closing the SQLite store while others still use it: what is under way finishes, what comes
later is refused by name, and nothing runs on the closed database (aiosqlite would run an
operation queued during its close on the closed connection: "Cannot operate on a closed
database", raised in whichever task asked)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from adapters.store.sqlite import SqliteStore, StoreClosed
from bot.model import AuditRecord


def _record(n: int) -> AuditRecord:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    return AuditRecord(at=at, member="local:alice", channel="local", text=f"c{n}", outcome="ok")


async def test_operations_around_a_close_finish_or_are_refused_never_hit_a_closed_database(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "state.db")
    store = await SqliteStore.open(path)
    before = [asyncio.create_task(store.add_audit(_record(n))) for n in range(20)]
    await asyncio.sleep(0)  # under way
    closing = asyncio.create_task(store.close())
    await asyncio.sleep(0)  # the close has begun
    after = [asyncio.create_task(store.add_audit(_record(n))) for n in range(20, 40)]
    await closing
    done_before = await asyncio.gather(*before, return_exceptions=True)
    done_after = await asyncio.gather(*after, return_exceptions=True)

    assert done_before == [None] * 20
    assert all(isinstance(result, StoreClosed) for result in done_after)
    with pytest.raises(StoreClosed, match="the store is closed"):
        await store.list_audit()

    reopened = await SqliteStore.open(path)
    try:
        assert len(await reopened.list_audit(limit=100)) == 20
    finally:
        await reopened.close()
