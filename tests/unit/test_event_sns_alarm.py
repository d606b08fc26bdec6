"""A CloudWatch alarm's own SNS message (an alarm action to a topic, delivered to the queue
or to POST /webhooks/sns) reads as the EventBridge alarm event it stands for."""

from __future__ import annotations

import json

from bot.config import parse_config
from commands.events.notices import Kind, Routes, read_event, unwrap
from tests.conftest import demo_data

# The message of aws/aws-lambda-go's events/testdata/cloudwatch-alarm-sns-payload-single-metric.json
# (AWS's Lambda library for Go), with the alarm, region and dimensions of the demo.
ALARM_MESSAGE = {
    "AlarmName": "api-5xx-production",
    "AlarmDescription": "EXAMPLE",
    "AWSAccountId": "123456789012",
    "NewStateValue": "ALARM",
    "NewStateReason": "Threshold Crossed: 1 out of the last 1 datapoints [1234.0 (06/03/15 "
    "17:43:27)] was greater than the threshold (0.0) (minimum 1 datapoint for OK -> ALARM "
    "transition).",
    "StateChangeTime": "2015-06-03T17:43:27.123+0000",
    "Region": "Asia Pacific (Tokyo)",
    "AlarmArn": "arn:aws:cloudwatch:ap-northeast-1:123456789012:alarm:api-5xx-production",
    "OldStateValue": "INSUFFICIENT_DATA",
    "Trigger": {
        "MetricName": "RunningTaskCount",
        "Namespace": "ECS/ContainerInsights",
        "StatisticType": "Statistic",
        "Statistic": "AVERAGE",
        "Unit": "Count",
        "Dimensions": [
            {"value": "production", "name": "ClusterName"},
            {"value": "api", "name": "ServiceName"},
        ],
        "Period": 60,
        "EvaluationPeriods": 1,
        "ComparisonOperator": "GreaterThanThreshold",
        "Threshold": 0.0,
    },
}


def test_an_alarms_sns_message_reads_as_its_state_change() -> None:
    body = json.dumps(
        {
            "Type": "Notification",
            "MessageId": "95df01b4-ee98-5cb9-9903-4c221d41eb5e",
            "TopicArn": "arn:aws:sns:ap-northeast-1:123456789012:alarms",
            "Message": json.dumps(ALARM_MESSAGE),
        }
    )
    notice = read_event(unwrap(body), Routes(parse_config(demo_data())))
    assert notice.kind is Kind.ALARM
    assert notice.event_id == "sns:95df01b4-ee98-5cb9-9903-4c221d41eb5e"
    assert (notice.alarm, notice.state, notice.previous_state) == (
        "api-5xx-production",
        "ALARM",
        "INSUFFICIENT_DATA",
    )
    assert (notice.service, notice.env, notice.region) == ("api", "production", "ap-northeast-1")
    assert notice.reason.startswith("Threshold Crossed")
    assert notice.at is not None and notice.at.year == 2015
