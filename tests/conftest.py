"""Shared fixtures: the AWS sandbox over HTTP (one per session, reset per test), the demo
config, and the whole bot built by the composition root with a recording chat."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from adapters.bootstrap import Bot, build_bot
from bot.config import Config, Settings, parse_config
from tests.support.chat import RecordingChat

DEMO_CONFIG = Path(__file__).parent.parent / "sandbox" / "demo.yaml"

os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "ap-northeast-1")


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[Any]:
    from sandbox import Sandbox, SandboxTiming

    sandbox = Sandbox(port=0, timing=SandboxTiming.fast())
    sandbox.start()
    yield sandbox
    sandbox.stop()


@pytest.fixture
def sandbox(sandbox_server: Any) -> Any:
    """The sandbox, freshly reset to the demo seed and the fast timing."""
    from sandbox import SandboxTiming

    sandbox_server.set_timing(SandboxTiming.fast())
    sandbox_server.reset()
    return sandbox_server


def demo_data() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(DEMO_CONFIG.read_text())
    return data


@pytest.fixture
def demo_config() -> Config:
    data = demo_data()
    data["store"] = "sqlite://:memory:"
    return parse_config(data)


@pytest.fixture
def chat() -> RecordingChat:
    return RecordingChat()


@pytest.fixture
async def bot(
    sandbox: Any, demo_config: Config, chat: RecordingChat, tmp_path: Path
) -> AsyncIterator[Bot]:
    settings = Settings(aws_endpoint_url=sandbox.url)
    built = await build_bot(demo_config, settings, chats=[chat], runner="test")
    try:
        yield built
    finally:
        await built.close()
