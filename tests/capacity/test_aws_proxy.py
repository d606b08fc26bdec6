"""The delaying, fault-injecting proxy in front of the sandbox: botocore must read its faults
as the errors AWS sends (throttling by code, per protocol; 5xx by status) and retry them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from adapters.aws.clients import AwsClients
from tests.support.aws_proxy import AwsProxy

REGION = "ap-northeast-1"


@pytest.fixture
async def proxy(sandbox_server: Any) -> AsyncIterator[AwsProxy]:
    # The sandbox as the previous test left it: these tests only read.
    async with AwsProxy(sandbox_server.url, latency=0.01, seed=3) as running:
        yield running


async def test_proxy_forwards_every_call_and_records_it(proxy: AwsProxy) -> None:
    clients = AwsClients(endpoint_url=proxy.url, max_attempts=1)
    try:
        ecs = await clients.client("ecs", REGION)
        services = await ecs.describe_services(cluster="staging", services=["api"])
        assert services["services"][0]["serviceName"] == "api"
        route53 = await clients.client("route53", REGION)
        zones = await route53.list_hosted_zones()
        assert "example.internal." in [z["Name"] for z in zones["HostedZones"]]
    finally:
        await clients.close()
    assert [(c.service, c.action, c.status) for c in proxy.calls] == [
        ("ecs", "DescribeServices", 200),
        ("route53", "GET /2013-04-01/hostedzone", 200),
    ]
    assert {c.added for c in proxy.calls} == {0.01}
    assert all(c.region == REGION for c in proxy.calls)


@pytest.mark.parametrize(
    ("service", "call", "code"),
    [
        ("ecs", ("list_clusters", {}), "ThrottlingException"),  # JSON protocol
        ("service-quotas", ("list_services", {}), "ThrottlingException"),
        ("ec2", ("describe_vpcs", {}), "RequestLimitExceeded"),  # EC2's own XML
        ("elbv2", ("describe_account_limits", {}), "Throttling"),  # query protocol
        ("autoscaling", ("describe_account_limits", {}), "Throttling"),
        ("route53", ("list_hosted_zones", {}), "Throttling"),  # REST-XML
    ],
)
async def test_throttling_has_the_shape_botocore_reads_and_retries(
    proxy: AwsProxy, service: str, call: tuple[str, dict[str, Any]], code: str
) -> None:
    proxy.fault_rate, proxy.faults = 1.0, ("throttle",)
    # botocore's max_attempts counts retries: one retry, two attempts.
    clients = AwsClients(endpoint_url=proxy.url, max_attempts=1)
    try:
        client = await clients.client(service, REGION)
        operation, params = call
        with pytest.raises(ClientError) as error:
            await getattr(client, operation)(**params)
    finally:
        await clients.close()
    assert error.value.response["Error"]["Code"] == code
    assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    # botocore classified it as retryable: a second attempt reached the proxy.
    assert error.value.response["ResponseMetadata"]["RetryAttempts"] == 1
    assert [c.fault for c in proxy.calls] == ["throttle"] * 2


async def test_server_errors_are_retried(proxy: AwsProxy) -> None:
    proxy.fault_rate, proxy.faults = 1.0, ("5xx",)
    clients = AwsClients(endpoint_url=proxy.url, max_attempts=1)
    try:
        elbv2 = await clients.client("elbv2", REGION)
        with pytest.raises(ClientError) as error:
            await elbv2.describe_load_balancers()
    finally:
        await clients.close()
    assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert error.value.response["Error"]["Code"] == "ServiceUnavailable"
    assert len(proxy.calls) == 2


async def test_calls_ride_through_a_share_of_faults(proxy: AwsProxy) -> None:
    proxy.fault_rate = 0.3
    clients = AwsClients(endpoint_url=proxy.url, max_attempts=10)
    try:
        ec2 = await clients.client("ec2", REGION)
        for _ in range(10):
            described = await ec2.describe_instances()
            assert described["Reservations"]
    finally:
        await clients.close()
    faults = {c.fault for c in proxy.faults_injected}
    assert faults == {"throttle", "5xx"}
    assert len(proxy.calls) == 10 + len(proxy.faults_injected)
