"""One sandbox for the whole session; every test starts from a freshly seeded world."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import botocore.session
import pytest

from adapters.sandbox import REGION, Sandbox, SandboxTiming

FAST = SandboxTiming.fast()


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[Sandbox]:
    sandbox = Sandbox(timing=FAST)
    sandbox.start()
    yield sandbox
    sandbox.stop()


@pytest.fixture
def sandbox(sandbox_server: Sandbox) -> Sandbox:
    sandbox_server.set_timing(FAST)
    sandbox_server.reset()
    return sandbox_server


@pytest.fixture(scope="session")
def aws(sandbox_server: Sandbox) -> Callable[[str], Any]:
    """AWS clients for the sandbox, as the bot would make them: any credentials will do."""
    session = botocore.session.get_session()
    clients: dict[str, Any] = {}

    def client(service: str) -> Any:
        if service not in clients:
            clients[service] = session.create_client(
                service,
                region_name=REGION,
                endpoint_url=sandbox_server.url,
                aws_access_key_id="AKIAEXAMPLE",
                aws_secret_access_key="example",
            )
        return clients[service]

    return client
