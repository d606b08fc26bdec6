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
# Record every call of kajitori's AWS clients (tests/support/aws_calls.py).
os.environ.setdefault("BOTOCORE_EXPERIMENTAL__PLUGINS", "kajitori_calls=tests.support.aws_calls")
os.environ["KAJITORI_RECORD_PID"] = str(os.getpid())


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Every action the run's AWS calls used is granted by deploy/iam-policy.json (the demo
    config's generated policy). Resources are checked in tests/access/test_policy_proof.py,
    where the config is the demo's; here other tests' own configs name other resources."""
    import fnmatch
    import json

    from tests.support.aws_calls import RECORDED, checks

    if not RECORDED:
        return
    policy = json.loads((Path(__file__).parent.parent / "deploy" / "iam-policy.json").read_text())
    granted = [a for s in policy["Statement"] for a in s["Action"]]
    actions = {c.action for call in RECORDED for c in checks(call, "123456789012")}
    # The demo's store is SQLite and its environments have no roles: a DynamoDB store's
    # table and sts:AssumeRole are granted only for configs that have them.
    missing = sorted(
        a
        for a in actions
        if not a.startswith(("dynamodb:", "sts:"))
        and not any(fnmatch.fnmatchcase(a, g) for g in granted)
    )
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    line = f"AWS calls recorded: {len(RECORDED)}, {len(actions)} actions; " + (
        f"NOT in deploy/iam-policy.json: {missing}"
        if missing
        else "all granted by deploy/iam-policy.json"
    )
    if reporter is not None:
        reporter.write_line(line)
    if missing:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


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
