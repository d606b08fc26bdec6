"""AWS clients for the sandbox tests (the sandbox fixtures are in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import botocore.session
import pytest

from sandbox import REGION, Sandbox


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
