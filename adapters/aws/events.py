"""AWS events on aiobotocore: the SQS queues kajitori long-polls, and what AWS says is
coming (EC2 DescribeInstanceStatus events, RDS DescribePendingMaintenanceActions, AWS Health
DescribeEvents)."""

from __future__ import annotations

import logging
import re
from datetime import datetime
from typing import Any

from botocore.exceptions import ReadTimeoutError

from adapters.aws.clients import AwsClients
from adapters.aws.health import aws_time, health_events
from bot.config import AwsScope
from bot.ports.events import QueuedMessage, Upcoming

log = logging.getLogger(__name__)

_QUEUE_REGION = re.compile(r"https?://sqs\.([a-z0-9-]+)\.amazonaws\.com")


def queue_region(url: str, default: str) -> str:
    """The region of an SQS queue URL (sqs.REGION.amazonaws.com), else `default`."""
    match = _QUEUE_REGION.match(url)
    return match.group(1) if match else default


class SqsEventQueue:
    def __init__(self, aws: AwsClients, default_region: str) -> None:
        self._aws = aws
        self._region = default_region

    async def _sqs(self, queue: str) -> Any:
        return await self._aws.client("sqs", queue_region(queue, self._region))

    async def receive(
        self, queue: str, *, max_messages: int, wait_seconds: int, visibility_seconds: int
    ) -> list[QueuedMessage]:
        sqs = await self._sqs(queue)
        try:
            response = await sqs.receive_message(
                QueueUrl=queue,
                MaxNumberOfMessages=max(1, min(max_messages, 10)),
                WaitTimeSeconds=max(0, min(wait_seconds, 20)),
                VisibilityTimeout=visibility_seconds,
                MessageSystemAttributeNames=["ApproximateReceiveCount"],
            )
        except ReadTimeoutError:
            # SQS (or the network to it) was slow to answer a long poll. Nothing is lost: a
            # message it handed out in that answer is offered again after its visibility
            # timeout. The next poll follows at once.
            log.warning("a long poll of %s got no answer in time; polling again", queue)
            return []
        return [
            QueuedMessage(
                queue=queue,
                message_id=str(m["MessageId"]),
                receipt=str(m["ReceiptHandle"]),
                body=str(m.get("Body", "")),
                receive_count=int(m.get("Attributes", {}).get("ApproximateReceiveCount", 1)),
            )
            for m in response.get("Messages", [])
        ]

    async def delete(self, queue: str, receipts: list[str]) -> None:
        sqs = await self._sqs(queue)
        for start in range(0, len(receipts), 10):
            batch = receipts[start : start + 10]
            response = await sqs.delete_message_batch(
                QueueUrl=queue,
                Entries=[{"Id": str(i), "ReceiptHandle": r} for i, r in enumerate(batch)],
            )
            for failed in response.get("Failed", []):
                log.warning("deleting a message from %s failed: %s", queue, failed.get("Code"))


def _time(value: Any) -> datetime | None:
    return aws_time(value)


class AwsUpcoming:
    def __init__(self, aws: AwsClients) -> None:
        self._aws = aws

    async def ec2_scheduled_events(self, scope: AwsScope) -> list[Upcoming]:
        ec2 = await self._aws.client("ec2", scope)
        found: list[Upcoming] = []
        paginator = ec2.get_paginator("describe_instance_status")
        async for page in paginator.paginate(IncludeAllInstances=True):
            for status in page.get("InstanceStatuses", []):
                for event in status.get("Events", []):
                    description = str(event.get("Description", ""))
                    if description.startswith("[Completed]") or description.startswith(
                        "[Canceled]"
                    ):
                        continue
                    found.append(
                        Upcoming(
                            source="EC2",
                            resource=str(status.get("InstanceId", "")),
                            what=f"{event.get('Code', '')}: {description}".strip(": "),
                            starts=_time(event.get("NotBefore")),
                            ends=_time(event.get("NotAfter")),
                            status="scheduled",
                        )
                    )
        return found

    async def rds_pending_maintenance(self, scope: AwsScope) -> list[Upcoming]:
        rds = await self._aws.client("rds", scope)
        resources: list[dict[str, Any]] = []
        paginator = rds.get_paginator("describe_pending_maintenance_actions")
        async for page in paginator.paginate():
            resources.extend(page.get("PendingMaintenanceActions", []))
        found: list[Upcoming] = []
        for resource in resources:
            arn = str(resource.get("ResourceIdentifier", ""))
            for action in resource.get("PendingMaintenanceActionDetails", []):
                starts = _time(action.get("CurrentApplyDate")) or _time(
                    action.get("AutoAppliedAfterDate")
                )
                what = str(action.get("Action", ""))
                if action.get("Description"):
                    what = f"{what}: {action['Description']}"
                found.append(
                    Upcoming(
                        source="RDS",
                        resource=arn.rsplit(":", 1)[-1],
                        what=what,
                        starts=starts,
                        ends=_time(action.get("ForcedApplyDate")),
                        status="pending",
                    )
                )
        return found

    async def health_events(self, scope: AwsScope) -> list[Upcoming]:
        return await health_events(self._aws, scope)
