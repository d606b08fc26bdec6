"""AWS events as AWS documents them, each from the page named above it; the tests change
only the names (cluster, service, group) to the demo's and the ids where they must differ."""

from __future__ import annotations

import copy
import json
import uuid
from typing import Any

# Amazon ECS Developer Guide, "Amazon ECS service deployment state change events",
# example "service deployment in progress":
# https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs_service_deployment_events.html
ECS_DEPLOYMENT_IN_PROGRESS: dict[str, Any] = {
    "version": "0",
    "id": "ddca6449-b258-46c0-8653-e0e3a6EXAMPLE",
    "detail-type": "ECS Deployment State Change",
    "source": "aws.ecs",
    "account": "111122223333",
    "time": "2020-05-23T12:31:14Z",
    "region": "us-west-2",
    "resources": ["arn:aws:ecs:us-west-2:111122223333:service/default/servicetest"],
    "detail": {
        "eventType": "INFO",
        "eventName": "SERVICE_DEPLOYMENT_IN_PROGRESS",
        "deploymentId": "ecs-svc/123",
        "updatedAt": "2020-05-23T11:11:11Z",
        "reason": "ECS deployment deploymentId in progress.",
    },
}

# AWS Health User Guide, "Reference: AWS Health events Amazon EventBridge schema", sample
# payload of an EC2 scheduled change:
# https://docs.aws.amazon.com/health/latest/ug/aws-health-events-eventbridge-schema.html
HEALTH_SCHEDULED_CHANGE: dict[str, Any] = {
    "version": "0",
    "id": "7fb65329-1628-4cf3-a740-95fg457h1402",
    "detail-type": "AWS Health Event",
    "source": "aws.health",
    "account": "123456789012",
    "time": "2016-06-05T06:27:57Z",
    "region": "ap-northeast-1",
    "resources": ["i-12345678"],
    "detail": {
        "eventArn": "arn:aws:health:ap-northeast-1::event/id",
        "service": "EC2",
        "eventTypeCode": "AWS_EC2_DEDICATED_HOST_NETWORK_MAINTENANCE_SCHEDULED",
        "eventTypeCategory": "scheduledChange",
        "startTime": "Sat, 05 Jun 2016 15:10:09 GMT",
        "eventDescription": [
            {
                "language": "en_US",
                "latestDescription": "A description of the event will be provided here",
            }
        ],
        "affectedEntities": [
            {"entityValue": "i-12345678", "tags": {"stage": "prod", "app": "my-app"}}
        ],
    },
}

# Amazon EC2 Auto Scaling User Guide, "Amazon EC2 Auto Scaling event reference",
# "EC2 Instance Launch Unsuccessful":
# https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-event-reference.html
ASG_LAUNCH_UNSUCCESSFUL: dict[str, Any] = {
    "version": "0",
    "id": "12345678-1234-1234-1234-123456789012",
    "detail-type": "EC2 Instance Launch Unsuccessful",
    "source": "aws.autoscaling",
    "account": "123456789012",
    "time": "yyyy-mm-ddThh:mm:ssZ",
    "region": "us-west-2",
    "resources": ["auto-scaling-group-arn", "instance-arn"],
    "detail": {
        "StatusCode": "Failed",
        "AutoScalingGroupName": "my-auto-scaling-group",
        "ActivityId": "87654321-4321-4321-4321-210987654321",
        "Details": {"Availability Zone": "us-west-2b", "Subnet ID": "subnet-12345678"},
        "RequestId": "12345678-1234-1234-1234-123456789012",
        "StatusMessage": "message-text",
        "EndTime": "yyyy-mm-ddThh:mm:ssZ",
        "EC2InstanceId": "i-1234567890abcdef0",
        "StartTime": "yyyy-mm-ddThh:mm:ssZ",
        "Cause": "description-text",
    },
}


def as_demo(example: dict[str, Any], **detail: Any) -> dict[str, Any]:
    """The example in the demo's account and region, with a fresh id."""
    event = copy.deepcopy(example)
    event["id"] = str(uuid.uuid4())
    event["account"] = "123456789012"
    region = event["region"]
    event["region"] = "ap-northeast-1"
    event["resources"] = [
        r.replace(region, "ap-northeast-1").replace("111122223333", "123456789012")
        for r in event["resources"]
    ]
    event["detail"].update(detail)
    return event


def put_entry(event: dict[str, Any]) -> dict[str, Any]:
    """The example as a PutEvents entry (EventBridge adds id, time, account, region)."""
    return {
        "Source": event["source"],
        "DetailType": event["detail-type"],
        "Detail": json.dumps(event["detail"]),
        "Resources": event["resources"],
    }
