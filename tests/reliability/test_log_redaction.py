"""Credentials never reach the logs, at any level: botocore's DEBUG lines (request headers,
the signing steps), exception messages and tracebacks, through handlers added after the
bot was built as well as the server's own JSON lines."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from adapters.bootstrap import build_bot
from bot.config import Config, Settings
from bot.logs import JsonFormatter
from bot.model import Origin, Outcome
from bot.redaction import Redactor, install_log_redaction
from tests.conftest import demo_data
from tests.support.chat import RecordingChat

ALICE = Origin(adapter="local", channel="local", member="local:alice")
# Shaped as AWS issues them, made up here: an STS session's key id, secret and token.
ACCESS_KEY_ID = "ASIAY34FZKBOKMUTVV7A"
SECRET_ACCESS_KEY = "kq6FhBDcq8uNAgvUQ0h1x4bD+s0lfMh7KTdrSQWn"
# A token not starting as STS tokens do, so that only where it stands can give it away.
SESSION_TOKEN = "QmFkZ2VyVG9rZW4" + "Xq1W2e3R4t5Y6u7I8o9P0aSdFgHjKlZxCvBnM" * 6
SLACK_TOKEN = "xoxb-0000000000-4444444444-kajitoriredactiontest"


@pytest.fixture
def debug_log() -> Iterator[io.StringIO]:
    """The root logger at DEBUG; each test adds its JSON handler writing here itself."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.DEBUG)
    try:
        yield io.StringIO()
    finally:
        root.setLevel(level)


def credentials_in(text: str) -> list[str]:
    return [s for s in (SECRET_ACCESS_KEY, SESSION_TOKEN, ACCESS_KEY_ID) if s in text]


async def test_an_aws_call_with_a_session_token_at_debug_logs_no_credential(
    sandbox: Any, debug_log: io.StringIO, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    data = demo_data()
    data["store"] = f"sqlite:///{tmp_path}/state.db"
    bot = await build_bot(
        Config.model_validate(data),
        Settings(aws_endpoint_url=sandbox.url),
        chats=[RecordingChat()],
        runner="redaction",
    )
    # Credentials the bot was not told about when it was built (as a role's session would
    # be): only where they stand in a line can mask them.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
    monkeypatch.setenv("AWS_SESSION_TOKEN", SESSION_TOKEN)
    handler = logging.StreamHandler(debug_log)
    handler.setFormatter(JsonFormatter())
    logging.getLogger().addHandler(handler)
    try:
        result = await bot.dispatcher.handle(ALICE, "status api staging")
    finally:
        logging.getLogger().removeHandler(handler)
        await bot.close()

    assert result.outcome is Outcome.OK, result.text
    logged = debug_log.getvalue()
    # botocore did log the request headers and the signing steps, and they are masked.
    assert "X-Amz-Security-Token" in logged
    assert "x-amz-security-token:[redacted]" in logged
    assert "'Authorization': b'[redacted]'" in logged
    assert "Signature:\\n[redacted]" in logged  # the signing step's, JSON-escaped
    assert credentials_in(logged) == []


def test_exception_text_and_traceback_are_redacted_at_every_level(
    debug_log: io.StringIO,
) -> None:
    handler = logging.StreamHandler(debug_log)
    handler.setFormatter(JsonFormatter())
    # As a bot does when it is built; the handler comes after.
    install_log_redaction(Redactor([SLACK_TOKEN]))
    logging.getLogger().addHandler(handler)
    log = logging.getLogger("kajitori.test.redaction")
    secret_text = (
        f"token={SLACK_TOKEN} Authorization: AWS4-HMAC-SHA256 Credential={ACCESS_KEY_ID}/"
        f"20261201/ap-northeast-1/ecs/aws4_request, Signature={'ab12' * 16} "
        f"'X-Amz-Security-Token': b'{SESSION_TOKEN}' aws_secret_access_key={SECRET_ACCESS_KEY}"
    )
    try:
        for level in (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR):
            log.log(level, "call failed: %s", secret_text)
        try:
            raise RuntimeError(secret_text)
        except RuntimeError:
            log.exception("while calling AWS")
            log.debug("with the stack", stack_info=True, exc_info=True)
        log.warning("extra fields too", extra={"headers": {"Authorization": secret_text}})
    finally:
        logging.getLogger().removeHandler(handler)

    logged = debug_log.getvalue()
    assert logged.count("call failed") == 4
    assert "RuntimeError: " in logged  # the traceback is there,
    assert "Traceback (most recent call last)" in logged
    assert SLACK_TOKEN not in logged  # without any secret in it
    assert credentials_in(logged) == []
    assert "[redacted]" in logged


async def test_kajitori_run_at_debug_writes_no_credential_from_its_environment(
    sandbox: Any, tmp_path: Path
) -> None:
    """The command line as an operator runs it: credentials in the environment, DEBUG."""
    config = tmp_path / "kajitori.yaml"
    data = demo_data()
    data["store"] = f"sqlite:///{tmp_path}/state.db"
    config.write_text(yaml.safe_dump(data))
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": sandbox.url,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
        "AWS_SESSION_TOKEN": SESSION_TOKEN,
        "KAJITORI_LOG_LEVEL": "DEBUG",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "adapters.cli",
        "run",
        "--config",
        str(config),
        "--as",
        "local:alice",
        "status api staging",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    logged = err.decode()

    assert process.returncode == 0, logged[-2000:]
    assert "version: v1 (sha256:" in out.decode()
    assert "X-Amz-Security-Token" in logged
    assert credentials_in(logged) == []
