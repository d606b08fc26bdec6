"""Fixtures for the database tests: a real MariaDB and a real sshd bastion on 127.0.0.1 (one of
each per test session), and the demo config pointed at them.

`staging` reads its admin secret from the AWS sandbox's Secrets Manager (the seeded
`kajitori/main-staging/admin`, whose password MariaDB's `admin` user is given), `production`
from the environment (`env:KAJITORI_TEST_DB_ADMIN`), so both ways are exercised.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from adapters.bootstrap import Bot
from adapters.tunnel.sessions import DbSessionManager
from bot.config import Config, parse_config
from sandbox.seed import SEED
from tests.conftest import demo_data
from tests.db.servers import MariaDbServer, SshBastion

PRODUCTION_ADMIN = {"username": "ops_admin", "password": "ops-admin-Pw-7c1e"}
PRODUCTION_ADMIN_ENV = "KAJITORI_TEST_DB_ADMIN"


@pytest.fixture(scope="session")
def mariadb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MariaDbServer]:
    server = MariaDbServer(tmp_path_factory.mktemp("mariadb"))
    try:
        server.start()
        server.setup(
            {
                SEED.db_admin("staging"): SEED.db_password("staging"),
                PRODUCTION_ADMIN["username"]: PRODUCTION_ADMIN["password"],
            }
        )
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def bastion(
    tmp_path_factory: pytest.TempPathFactory, mariadb: MariaDbServer
) -> Iterator[SshBastion]:
    server = SshBastion(tmp_path_factory.mktemp("bastion"), permit=("127.0.0.1", mariadb.port))
    try:
        server.start()
        yield server
    finally:
        server.stop()


def database_entry(
    env: str, mariadb: MariaDbServer, bastion: SshBastion, **changes: Any
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "engine": "mysql",
        "reader": f"main-{env}.cluster-ro-demo.ap-northeast-1.rds.amazonaws.com",
        # The bastion reaches MariaDB on loopback; the reader name above is what Aurora has.
        "connect_host": "127.0.0.1",
        "port": mariadb.port,
        "database": "app",
        "cluster": f"main-{env}",
        "admin_secret": (
            SEED.db_secret_id(env) if env == "staging" else f"env:{PRODUCTION_ADMIN_ENV}"
        ),
        "bastion": {
            "host": "127.0.0.1",
            "port": bastion.port,
            "user": bastion.user,
            "key_file": str(bastion.key_file),
            "known_hosts": str(bastion.known_hosts),
        },
    }
    if env == "staging":
        entry.update(statement_timeout="1s", row_limit=200)
    entry.update(changes)
    return entry


def db_config_data(mariadb: MariaDbServer, bastion: SshBastion, **changes: Any) -> dict[str, Any]:
    data = demo_data()
    data["store"] = "sqlite://:memory:"
    for env in ("staging", "production"):
        data["environments"][env]["databases"] = {
            "main": database_entry(env, mariadb, bastion, **changes)
        }
    return data


@pytest.fixture(autouse=True)
def production_admin_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PRODUCTION_ADMIN_ENV, json.dumps(PRODUCTION_ADMIN))


@pytest.fixture
def demo_config(mariadb: MariaDbServer, bastion: SshBastion) -> Config:
    """The demo config, its databases at the local MariaDB through the local bastion."""
    return parse_config(db_config_data(mariadb, bastion))


@pytest.fixture(autouse=True)
def no_user_left_behind(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test that uses the database ends (after its bot closed) with no temporary user."""
    if "mariadb" not in request.fixturenames:
        yield
        return
    mariadb: MariaDbServer = request.getfixturevalue("mariadb")
    mariadb.drop_kajitori_users()
    yield
    left = mariadb.kajitori_users()
    mariadb.drop_kajitori_users()
    assert left == [], f"temporary users left behind: {left}"


def sessions_of(bot: Bot) -> DbSessionManager:
    return bot.db_sessions


async def startup_sweep(bot: Bot) -> None:
    """Wait for the sweep every start runs, so that it does not count as a test's traffic."""
    sweep = bot.startup_sweep
    assert sweep is not None
    await sweep
