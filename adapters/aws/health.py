"""AWS Health on aiobotocore: the account's open and upcoming events (DescribeEvents) and
the entities they affect (DescribeAffectedEntities).

Its own module: AWS Health's operation names (DescribeEvents) are also RDS's, and each
adapter module's AWS calls are matched to the IAM policy by the services it uses."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from adapters.aws.clients import AwsClients
from bot.config import AwsScope
from bot.ports.events import Upcoming

log = logging.getLogger(__name__)

# AWS Health's API has one endpoint, in us-east-1, for every region.
HEALTH_REGION = "us-east-1"


def aws_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return None


# DescribeAffectedEntities takes at most 10 event ARNs at a time.
_EVENTS_PER_ENTITY_CALL = 10


async def health_events(aws: AwsClients, scope: AwsScope) -> list[Upcoming]:
    """Open and upcoming AWS Health events of the scope's account in its region, with the
    entities each affects."""
    health = await aws.client("health", scope.in_region(HEALTH_REGION))
    events: list[dict[str, Any]] = []
    try:
        paginator = health.get_paginator("describe_events")
        async for page in paginator.paginate(
            filter={"regions": [scope.region], "eventStatusCodes": ["open", "upcoming"]}
        ):
            events.extend(page.get("events", []))
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code == "SubscriptionRequiredException":
            # The Health API needs a Business, Enterprise On-Ramp or Enterprise support plan.
            log.info("AWS Health's API is not available to this account (%s)", code)
            return []
        raise
    # Public events concern everyone in the region and list no entities of the account.
    specific = [str(e["arn"]) for e in events if e.get("eventScopeCode") != "PUBLIC"]
    entities: dict[str, list[str]] = {}
    for start in range(0, len(specific), _EVENTS_PER_ENTITY_CALL):
        paginator = health.get_paginator("describe_affected_entities")
        async for page in paginator.paginate(
            filter={"eventArns": specific[start : start + _EVENTS_PER_ENTITY_CALL]}
        ):
            for entity in page.get("entities", []):
                value = str(entity.get("entityValue", ""))
                if value:
                    entities.setdefault(str(entity.get("eventArn", "")), []).append(value)
    return [
        Upcoming(
            source="Health",
            resource=str(event.get("service", "")),
            what=f"{event.get('eventTypeCode', '')} ({event.get('eventTypeCategory', '')})",
            starts=aws_time(event.get("startTime")),
            ends=aws_time(event.get("endTime")),
            status=str(event.get("statusCode", "")),
            entities=entities.get(str(event.get("arn", "")), []),
        )
        for event in events
    ]
