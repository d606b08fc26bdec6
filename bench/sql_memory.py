"""How much memory one hostile `sql` costs the bot: peak RSS growth, printed as JSON.

Starts a real MariaDB and a real sshd on 127.0.0.1 (as the database tests do; needs the
Debian packages from `make system-packages`), builds the bot with one database, and sends each
query through the dispatcher as a member would: guard, SSH tunnel, temporary user, streamed
read, reply with its table and CSV file. MariaDB and sshd are other processes; what is
measured is this one.

Each query runs in a new process, after a warm-up query; the figure is its peak resident set
(VmHWM, reset through /proc/self/clear_refs) minus its resident set just before the query. The goal is under +50 MB with the default
max_result_bytes (10 MB) and max_cell_bytes (64 KB).

    .venv/bin/python bench/sql_memory.py
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from adapters.bootstrap import running_bot
from bot.config import Settings, parse_config
from bot.model import Origin, Outcome
from tests.db.servers import MariaDbServer, SshBastion

ADMIN = {"username": "bench_admin", "password": "bench-admin-pw-1"}
ORIGIN = Origin(adapter="local", channel="local", member="local:bench")
GOAL_MB = 50
QUERIES = {
    # The report: 40 cells of 8,000,000 bytes, 320 MB in all.
    "long cells": "SELECT REPEAT('a', 8000000) FROM events LIMIT 40",
    # Rows that each fit max_cell_bytes, 15 MB in all: cut by max_result_bytes.
    "many rows": "SELECT id, REPEAT('b', 60000) FROM events",
}
MB = 1 << 20


def bench_config(mariadb: MariaDbServer, bastion: SshBastion) -> dict[str, Any]:
    database = {
        "reader": "reader.bench.internal",
        "connect_host": "127.0.0.1",
        "port": mariadb.port,
        "database": "app",
        "admin_secret": "env:KAJITORI_BENCH_DB_ADMIN",
        "bastion": {
            "host": "127.0.0.1",
            "port": bastion.port,
            "user": bastion.user,
            "key_file": str(bastion.key_file),
            "known_hosts": str(bastion.known_hosts),
        },
        "statement_timeout": "120s",
    }
    return {
        "store": "sqlite://:memory:",
        "environments": {"bench": {"region": "ap-northeast-1", "databases": {"main": database}}},
        "access": {"roles": {"analyst": ["sql:*"]}, "members": {"local:bench": ["analyst"]}},
        "approvals": {"approvers": ["analyst"]},
    }


def memory_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def reset_peak() -> None:
    # Writing 5 resets VmHWM to the current resident set (Linux 4.0 and later).
    Path("/proc/self/clear_refs").write_text("5")


async def measure(bot: Any, statement: str) -> dict[str, Any]:
    reset_peak()
    before = memory_kb("VmRSS")
    started = time.monotonic()
    result = await bot.dispatcher.handle(ORIGIN, f"sql main bench {statement}")
    took = time.monotonic() - started
    peak = memory_kb("VmHWM")
    if result.outcome is not Outcome.OK:
        raise SystemExit(f"{statement}: {result.text}")
    [message] = result.messages
    table = message.table
    return {
        "statement": statement,
        "reply": message.text,
        "note": table.note if table else None,
        "csv_bytes": len(message.attachment.content.encode()) if message.attachment else 0,
        "seconds": round(took, 2),
        "rss_before_mb": round(before * 1024 / MB, 1),
        "peak_rss_mb": round(peak * 1024 / MB, 1),
        "peak_growth_mb": round((peak - before) * 1024 / MB, 1),
    }


async def measure_in_this_process(config: dict[str, Any], statement: str) -> dict[str, Any]:
    os.environ["KAJITORI_BENCH_DB_ADMIN"] = json.dumps(ADMIN)
    async with running_bot(parse_config(config), Settings()) as bot:
        assert bot.startup_sweep is not None
        await bot.startup_sweep
        # Warm-up: imports, the SSH client, the first connection's buffers.
        warm = await bot.dispatcher.handle(ORIGIN, "sql main bench SELECT id FROM events")
        if warm.outcome is not Outcome.OK:
            raise SystemExit(warm.text)
        return await measure(bot, statement)


def measure_in_a_new_process(config: dict[str, Any], statement: str) -> dict[str, Any]:
    """Each query in a process of its own: memory freed by one is not counted against the next."""
    with tempfile.NamedTemporaryFile("w", suffix=".json") as file:
        json.dump(config, file)
        file.flush()
        done = subprocess.run(
            [sys.executable, __file__, "--config", file.name, "--statement", statement],
            check=True,
            capture_output=True,
            text=True,
        )
    measured: dict[str, Any] = json.loads(done.stdout)
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", help=argparse.SUPPRESS)
    parser.add_argument("--statement", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.config:
        config = json.loads(Path(args.config).read_text())
        print(json.dumps(asyncio.run(measure_in_this_process(config, args.statement))))
        return
    with tempfile.TemporaryDirectory(prefix="kajitori-bench-sql-") as folder:
        mariadb = MariaDbServer(Path(folder, "mariadb"))
        mariadb.folder.mkdir()
        bastion = SshBastion(Path(folder, "bastion"), permit=("127.0.0.1", mariadb.port))
        bastion.folder.mkdir()
        try:
            mariadb.start()
            mariadb.setup({ADMIN["username"]: ADMIN["password"]})
            bastion.start()
            config = bench_config(mariadb, bastion)
            results = {
                name: measure_in_a_new_process(config, statement)
                for name, statement in QUERIES.items()
            }
        finally:
            bastion.stop()
            mariadb.stop()
    worst = max(r["peak_growth_mb"] for r in results.values())
    print(
        json.dumps(
            {
                "queries": results,
                "peak_growth_mb": worst,
                "goal_mb": GOAL_MB,
                "within_goal": worst < GOAL_MB,
                "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
                f"Python {platform.python_version()}",
                "date": time.strftime("%Y-%m-%d"),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
