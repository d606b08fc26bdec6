"""AWS Health on aiobotocore: the account's open and upcoming events (DescribeEvents).

Its own module: AWS Health's operation names (DescribeEvents) are also RDS's, and each
adapter module's AWS calls are matched to the IAM policy by the services it uses."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from adapters.aws.clients import AwsClients
from bot.ports.events import Upcoming

log = logging.getLogger(__name__)

# AWS Health's API has one endpoint, in us-east-1, for every region.
HEALTH_REGION = "us-east-1"


def aws_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return None


async def health_events(aws: AwsClients, region: str) -> list[Upcoming]:
    """Open and upcoming AWS Health events of the account in `region`."""
    health = await aws.client("health", HEALTH_REGION)
    try:
        response = await health.describe_events(
            filter={"regions": [region], "eventStatusCodes": ["open", "upcoming"]}
        )
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code == "SubscriptionRequiredException":
            # The Health API needs a Business, Enterprise On-Ramp or Enterprise support plan.
            log.info("AWS Health's API is not available to this account (%s)", code)
            return []
        raise
    return [
        Upcoming(
            source="Health",
            resource=str(event.get("service", "")),
            what=f"{event.get('eventTypeCode', '')} ({event.get('eventTypeCategory', '')})",
            starts=aws_time(event.get("startTime")),
            ends=aws_time(event.get("endTime")),
            status=str(event.get("statusCode", "")),
        )
        for event in response.get("events", [])
    ]
