"""How long `db open`, `db close` and `sql` take against a local bastion and MariaDB.

Starts a real MariaDB and a real sshd on 127.0.0.1 (as the database tests do; needs the
Debian packages from `make system-packages`), builds the bot with one database whose admin
secret comes from the environment, and times each command over several runs. The numbers are
kajitori's own overhead: SSH handshake, admin login, user creation and removal, the tunnel.

    .venv/bin/python bench/db_sessions.py [--runs 20]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pymysql

from adapters.bootstrap import running_bot
from bot.config import Settings, parse_config
from bot.model import Origin, Outcome
from tests.db.servers import MariaDbServer, SshBastion

ADMIN = {"username": "bench_admin", "password": "bench-admin-pw-1"}
ORIGIN = Origin(adapter="local", channel="local", member="local:bench")


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
    }
    return {
        "store": "sqlite://:memory:",
        "environments": {"bench": {"region": "ap-northeast-1", "databases": {"main": database}}},
        "access": {
            "roles": {"analyst": ["db:*", "sql:*"]},
            "members": {"local:bench": ["analyst"]},
        },
        "approvals": {"approvers": ["analyst"]},
    }


def first_query(fields: dict[str, str]) -> None:
    with (
        contextlib.closing(
            pymysql.connect(
                host=fields["host"],
                port=int(fields["port"]),
                user=fields["user"],
                password=fields["password"],
                database=fields["database"],
                connect_timeout=5,
            )
        ) as connection,
        connection.cursor() as cursor,
    ):
        cursor.execute("SELECT COUNT(*) FROM orders")


async def timed(bot: Any, text: str) -> tuple[float, Any]:
    started = time.monotonic()
    result = await bot.dispatcher.handle(ORIGIN, text)
    if result.outcome is not Outcome.OK:
        raise SystemExit(f"{text}: {result.text}")
    return time.monotonic() - started, result


async def bench(runs: int, mariadb: MariaDbServer, bastion: SshBastion) -> dict[str, list[float]]:
    os.environ["KAJITORI_BENCH_DB_ADMIN"] = json.dumps(ADMIN)
    times: dict[str, list[float]] = {"db open": [], "first query": [], "db close": [], "sql": []}
    async with running_bot(parse_config(bench_config(mariadb, bastion)), Settings()) as bot:
        sweep = bot.startup_sweep
        assert sweep is not None
        await sweep
        for _ in range(runs):
            took, result = await timed(bot, "db open main bench")
            times["db open"].append(took)
            fields = next(m for m in result.messages if m.private).fields
            started = time.monotonic()
            await asyncio.to_thread(first_query, fields)
            times["first query"].append(time.monotonic() - started)
            took, _ = await timed(bot, "db close " + result.messages[0].text.split()[2].rstrip(":"))
            times["db close"].append(took)
            took, _ = await timed(bot, "sql main bench SELECT id, customer FROM orders LIMIT 10")
            times["sql"].append(took)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kajitori-bench-db-") as folder:
        mariadb = MariaDbServer(Path(folder, "mariadb"))
        mariadb.folder.mkdir()
        bastion = SshBastion(Path(folder, "bastion"), permit=("127.0.0.1", mariadb.port))
        bastion.folder.mkdir()
        try:
            mariadb.start()
            mariadb.setup({ADMIN["username"]: ADMIN["password"]})
            bastion.start()
            times = asyncio.run(bench(args.runs, mariadb, bastion))
        finally:
            bastion.stop()
            mariadb.stop()
    print(f"{args.runs} runs (seconds)        p50     p95     max")
    for name, values in times.items():
        ordered = sorted(values)
        p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
        print(f"{name:<24}{statistics.median(values):8.3f}{p95:8.3f}{max(values):8.3f}")


if __name__ == "__main__":
    main()
