"""`GET /metrics`, `GET /readyz` and the JSON logs, through the real server on a socket."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import secrets
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from botocore.exceptions import ClientError

from adapters.aws.clients import AwsClients
from adapters.bootstrap import Bot, build_bot
from adapters.store.dynamodb import DynamoStore
from bot.config import Config, Settings, parse_config
from bot.errors import OperationFailed
from bot.jobs.context import JobContext
from bot.jobs.locks import LockKey
from bot.logs import json_handler
from bot.messages import Message
from bot.model import JobStatus
from bot.plan import Plan
from tests.conftest import demo_data
from tests.reliability.helpers import ALICE, samples, serving, start_job, value
from tests.support.aws_proxy import AwsProxy
from tests.support.chat import RecordingChat
from tests.support.serve import ServeProcess, free_port

REGION = "ap-northeast-1"


async def fetch(url: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, response.headers.get("Content-Type", ""), await response.text()


async def test_metrics_count_commands_jobs_acks_and_aws_calls(bot: Bot) -> None:
    async with serving(bot) as url:
        assert (await bot.dispatcher.handle(ALICE, "help")).outcome.value == "ok"
        assert (await bot.dispatcher.handle(ALICE, "frobnicate now")).outcome.value == "usage"
        assert (await bot.dispatcher.handle(ALICE, "help")).outcome.value == "ok"
        status = await bot.dispatcher.handle(ALICE, "status api staging")
        assert status.outcome.value == "ok", status.text

        async def succeed(job: JobContext) -> Message:
            return Message(text="done")

        async def fail(job: JobContext) -> Message:
            raise OperationFailed("the target group never became healthy")

        for body in (succeed, succeed, fail):
            record = await start_job(bot, body)
            await bot.jobs.wait(record.id)

        ecs = await bot.aws.client("ecs", REGION)
        with pytest.raises(ClientError):
            await ecs.describe_services(cluster="no-such-cluster", services=["api"])

        async with aiohttp.ClientSession() as session:
            async with session.post(f"{url}/typetalk/webhook", data=b"{}") as response:
                assert response.status == 401
            async with session.post(f"{url}/webhooks/github", data=b"{}") as response:
                assert response.status == 401

        code, content_type, text = await fetch(f"{url}/metrics")

    assert code == 200
    assert content_type.startswith("text/plain") and "version=" in content_type
    found = samples(text)
    assert value(found, "kajitori_commands_total", command="help", outcome="ok") == 2
    assert value(found, "kajitori_commands_total", command="unknown", outcome="usage") == 1
    assert value(found, "kajitori_commands_total", command="status", outcome="ok") == 1
    assert value(found, "kajitori_jobs_total", outcome="succeeded") == 2
    assert value(found, "kajitori_jobs_total", outcome="failed") == 1
    assert value(found, "kajitori_job_duration_seconds_count", outcome="succeeded") == 2
    assert value(found, "kajitori_jobs_running") == 0
    assert value(found, "kajitori_http_requests_total", adapter="typetalk", status="401") == 1
    assert value(found, "kajitori_http_requests_total", adapter="github", status="401") == 1
    assert value(found, "kajitori_ack_seconds_count", adapter="typetalk") == 1
    assert value(found, "kajitori_ack_seconds_count", adapter="github") == 1
    # `status` asked ECS; the failed call is counted with its AWS error code.
    assert (
        value(
            found,
            "kajitori_aws_call_duration_seconds_count",
            service="ecs",
            operation="DescribeServices",
        )
        >= 2
    )
    assert (
        value(
            found,
            "kajitori_aws_call_errors_total",
            service="ecs",
            operation="DescribeServices",
            code="ClusterNotFoundException",
        )
        == 1
    )


async def test_metrics_count_the_retries_of_throttled_and_failing_aws_calls(
    sandbox_server: Any, demo_config: Config, chat: RecordingChat
) -> None:
    async with AwsProxy(sandbox_server.url, fault_rate=0.4, seed=11) as proxy:
        aws = AwsClients(endpoint_url=proxy.url, max_attempts=3)
        bot = await build_bot(demo_config, Settings(), chats=[chat], aws=aws, runner="test")
        try:
            ecs = await bot.aws.client("ecs", REGION)
            failed = 0
            for _ in range(12):
                try:
                    await ecs.list_clusters()
                except ClientError:
                    failed += 1
            found = samples(bot.metrics.render()[0].decode())
        finally:
            await bot.close()
    faults = len(proxy.faults_injected)
    assert faults > 0
    retries = value(
        found, "kajitori_aws_call_retries_total", service="ecs", operation="ListClusters"
    )
    errors = sum(
        v
        for (name, labels), v in found.items()
        if name == "kajitori_aws_call_errors_total" and ("operation", "ListClusters") in labels
    )
    assert errors == failed
    # Every injected fault was either retried or ended its call.
    assert retries + failed == faults
    assert (
        value(
            found,
            "kajitori_aws_call_duration_seconds_count",
            service="ecs",
            operation="ListClusters",
        )
        == 12
    )


async def test_metrics_time_the_dynamodb_store_calls(
    sandbox_server: Any, chat: RecordingChat
) -> None:
    data = demo_data()
    data["store"] = f"dynamodb://kajitori-metrics-{secrets.token_hex(3)}?region={REGION}"
    settings = Settings(aws_endpoint_url=sandbox_server.url)
    bot = await build_bot(parse_config(data), settings, chats=[chat], runner="test")
    try:
        await bot.dispatcher.handle(ALICE, "help")
        store = bot.services.store
        assert isinstance(store, DynamoStore)
        assert await store.first_seen("slack:Ev1", bot.services.clock.now().replace(year=2100))
        assert not await store.first_seen("slack:Ev1", bot.services.clock.now().replace(year=2100))
        found = samples(bot.metrics.render()[0].decode())
        await store.client.delete_table(TableName=store.table)
    finally:
        await bot.close()
    # The audit record of `help`, and the two deliveries.
    assert (
        value(
            found,
            "kajitori_aws_call_duration_seconds_count",
            service="dynamodb",
            operation="PutItem",
        )
        == 3
    )
    assert (
        value(
            found,
            "kajitori_aws_call_errors_total",
            service="dynamodb",
            operation="PutItem",
            code="ConditionalCheckFailedException",
        )
        == 1
    )


async def test_readyz_answers_503_when_the_store_is_unreachable(
    sandbox_server: Any, demo_config: Config, chat: RecordingChat
) -> None:
    proxy = await AwsProxy(sandbox_server.url).start()
    try:
        store = await DynamoStore.open(
            f"kajitori-ready-{secrets.token_hex(3)}", region=REGION, endpoint_url=proxy.url
        )
        settings = Settings(aws_endpoint_url=sandbox_server.url)
        bot = await build_bot(demo_config, settings, chats=[chat], store=store, runner="test")
        try:
            async with serving(bot) as url:
                code, _, body = await fetch(f"{url}/readyz")
                assert (code, json.loads(body)["status"]) == (200, "ready")

                await proxy.stop()  # DynamoDB is now out of reach
                code, _, body = await fetch(f"{url}/readyz")
                assert code == 503
                assert json.loads(body)["status"] == "unavailable"
                # Liveness does not depend on the store: the process itself is fine.
                code, _, _ = await fetch(f"{url}/healthz")
                assert code == 200
        finally:
            await bot.close()
    finally:
        await proxy.stop()


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = json_handler(stream)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


async def test_json_logs_carry_the_job_id_of_the_job_that_wrote_them(
    bot: Bot, chat: RecordingChat, json_log: io.StringIO
) -> None:
    step = logging.getLogger("tests.job_body")

    async def crash(job: JobContext) -> Message:
        step.warning("about to divide", extra={"attempt": 2})
        await asyncio.sleep(0)
        return Message(text=str(1 / 0))

    async def quiet(job: JobContext) -> Message:
        step.warning("quiet step")
        return Message(text="ok")

    first = await start_job(bot, crash, title="crashing job")
    second = await start_job(bot, quiet, title="quiet job")
    assert await bot.jobs.wait(first.id) is JobStatus.FAILED
    assert await bot.jobs.wait(second.id) is JobStatus.SUCCEEDED
    logging.getLogger("tests.outside").warning("not in a job")

    entries = lines(json_log)
    by_message = {e["message"]: e for e in entries}
    assert by_message["about to divide"]["job_id"] == first.id
    assert by_message["about to divide"]["attempt"] == 2
    assert by_message["about to divide"]["level"] == "WARNING"
    assert by_message["about to divide"]["logger"] == "tests.job_body"
    assert by_message["quiet step"]["job_id"] == second.id
    assert "job_id" not in by_message["not in a job"]

    crashed = [e for e in entries if e.get("job_id") == first.id and "exception" in e]
    assert len(crashed) == 1
    assert "ZeroDivisionError" in crashed[0]["exception"]
    started = [e for e in entries if e["message"] == "job started: crashing job"]
    assert started and started[0]["job_id"] == first.id
    # The traceback stays in the logs; the chat only gets the job id.
    assert any(f"internal error, job J{first.id}" in t for t in chat.texts())
    assert not any("ZeroDivisionError" in t or "Traceback" in t for t in chat.texts())


async def test_serve_logs_json_and_exposes_metrics(sandbox: Any, tmp_path: Path) -> None:
    data = demo_data()
    data["store"] = f"sqlite://{tmp_path / 'state.db'}"
    process = ServeProcess(data, {"AWS_ENDPOINT_URL": sandbox.url}, tmp_path)
    await process.start()
    try:
        code, _, _ = await fetch(f"{process.url}/readyz")
        assert code == 200
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{process.url}/webhooks/ci/jenkins", data=b"{}") as response,
        ):
            assert response.status == 401
        code, _, text = await fetch(f"{process.url}/metrics")
        assert code == 200
        found = samples(text)
        assert value(found, "kajitori_http_requests_total", adapter="ci", status="401") == 1
    finally:
        await process.stop()
    output = process.log().splitlines()
    logged = [json.loads(line) for line in output if not line.startswith("kajitori serving on")]
    assert logged, output
    for entry in logged:
        assert {"time", "level", "logger", "message"} <= entry.keys()


async def test_metrics_port_serves_metrics_apart_from_the_public_endpoints(
    sandbox: Any, tmp_path: Path
) -> None:
    data = demo_data()
    data["store"] = f"sqlite://{tmp_path / 'state.db'}"
    metrics_port = free_port()
    process = ServeProcess(
        data,
        {"AWS_ENDPOINT_URL": sandbox.url},
        tmp_path,
        extra_args=["--metrics-port", str(metrics_port)],
    )
    await process.start()
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{process.url}/webhooks/ci/jenkins", data=b"{}") as response,
        ):
            assert response.status == 401
        public = await fetch(f"{process.url}/metrics")
        code, content_type, text = await fetch(f"http://127.0.0.1:{metrics_port}/metrics")
    finally:
        await process.stop()

    assert public[0] == 404
    assert code == 200
    assert content_type.startswith("text/plain")
    # The requests answered on the public port are counted on the metrics port.
    assert value(samples(text), "kajitori_http_requests_total", adapter="ci", status="401") == 1


async def test_metrics_count_the_lease_renewals_of_a_running_job_and_its_lock(
    sandbox: Any, demo_config: Config, chat: RecordingChat
) -> None:
    bot = await build_bot(
        demo_config,
        Settings(aws_endpoint_url=sandbox.url),
        chats=[chat],
        runner="test",
        lock_lease=timedelta(seconds=0.4),
    )
    try:
        async with serving(bot) as url:
            beats = asyncio.Event()

            async def renewed() -> dict[str, float]:
                found = samples((await fetch(f"{url}/metrics"))[2])
                return {
                    what: value(found, "kajitori_lease_renewals_total", what=what)
                    for what in ("job", "lock")
                }

            async def long_job(job: JobContext) -> Message:
                await beats.wait()
                return Message(text="done")

            record = await bot.jobs.start(
                Plan(
                    title="hold api in staging",
                    changes=[],
                    run=long_job,
                    kind="test",
                    state={},
                    locks=[LockKey("api", "staging")],
                ),
                origin=ALICE,
                command="jobs",
            )
            for _ in range(600):  # up to 30 s on a loaded machine; the first beats suffice
                if (await renewed())["job"] >= 3:
                    break
                await asyncio.sleep(0.05)
            beats.set()
            assert await bot.jobs.wait(record.id) is JobStatus.SUCCEEDED
            counts = await renewed()
    finally:
        await bot.close()
    # Each beat renews the job's lease; every other beat, then, the lock it holds (leased
    # twice as long): one write each.
    assert counts["job"] >= 3
    assert counts["job"] // 2 - 1 <= counts["lock"] <= counts["job"] // 2
