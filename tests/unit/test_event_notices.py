"""Reading AWS events: CloudWatch's documented alarm event routed by its dimensions or by
the words of its name, `ignore` patterns, and bodies that are not events."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from bot.config import parse_config
from commands.events.notices import Kind, NotAnEvent, Routes, is_ignored, read_event, unwrap
from tests.conftest import demo_data

# CloudWatch User Guide, "Alarm events and EventBridge", state change for a single-metric
# alarm: https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/cloudwatch-and-eventbridge.html
ALARM: dict[str, Any] = {
    "version": "0",
    "id": "c4c1c1c9-6542-e61b-6ef0-8c4d36933a92",
    "detail-type": "CloudWatch Alarm State Change",
    "source": "aws.cloudwatch",
    "account": "123456789012",
    "time": "2019-10-02T17:04:40Z",
    "region": "us-east-1",
    "resources": ["arn:aws:cloudwatch:us-east-1:123456789012:alarm:ServerCpuTooHigh"],
    "detail": {
        "alarmName": "ServerCpuTooHigh",
        "configuration": {
            "description": "Goes into alarm when server CPU utilization is too high!",
            "metrics": [
                {
                    "id": "30b6c6b2-a864-43a2-4877-c09a1afc3b87",
                    "metricStat": {
                        "metric": {
                            "dimensions": {"InstanceId": "i-12345678901234567"},
                            "name": "CPUUtilization",
                            "namespace": "AWS/EC2",
                        },
                        "period": 300,
                        "stat": "Average",
                    },
                    "returnData": True,
                }
            ],
        },
        "previousState": {"value": "OK", "timestamp": "2019-10-01T13:56:40.987+0000"},
        "state": {
            "reason": "Threshold Crossed: 1 out of the last 1 datapoints [99.50160229693434 "
            "(02/10/19 16:59:00)] was greater than the threshold (50.0)",
            "timestamp": "2019-10-02T17:04:40.989+0000",
            "value": "ALARM",
        },
    },
}


@pytest.fixture
def routes() -> Routes:
    return Routes(parse_config(demo_data()))


def test_the_documented_alarm_event_reads_as_an_alarm_of_no_environment(routes: Routes) -> None:
    notice = read_event(ALARM, routes)
    assert notice.kind is Kind.ALARM
    assert (notice.alarm, notice.state, notice.previous_state) == (
        "ServerCpuTooHigh",
        "ALARM",
        "OK",
    )
    assert notice.at is not None and notice.at.isoformat() == "2019-10-02T17:04:40.989000+00:00"
    assert notice.env is None and notice.service is None
    assert notice.fields["what"].startswith("Goes into alarm")
    assert notice.console is not None and "us-east-1" in notice.console


def test_an_alarm_is_routed_by_its_ecs_dimensions_else_by_the_words_of_its_name(
    routes: Routes,
) -> None:
    by_dimensions = copy.deepcopy(ALARM)
    metric = by_dimensions["detail"]["configuration"]["metrics"][0]["metricStat"]["metric"]
    metric["dimensions"] = {"ClusterName": "production", "ServiceName": "api"}
    notice = read_event(by_dimensions, routes)
    assert (notice.service, notice.env) == ("api", "production")
    by_name = copy.deepcopy(ALARM)
    by_name["detail"]["alarmName"] = "worker-queue-depth-staging"
    notice = read_event(by_name, routes)
    assert (notice.service, notice.env) == ("worker", "staging")


def test_ignore_matches_detail_type_source_and_alarm_name(routes: Routes) -> None:
    notice = read_event(ALARM, routes)
    assert is_ignored(notice, ["Server*High"])
    assert is_ignored(notice, ["aws.cloudwatch/*"])
    assert is_ignored(notice, ["CloudWatch Alarm State Change"])
    assert not is_ignored(notice, ["aws.ecs/*", "other-alarm"])


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ("not json", "not JSON"),
        ("[1]", "not a JSON object"),
        (json.dumps({"Type": "Notification", "Message": "{"}), "Message is not JSON"),
    ],
)
def test_a_body_that_is_not_an_event_says_why(body: str, why: str) -> None:
    with pytest.raises(NotAnEvent, match=why):
        unwrap(body)


@pytest.mark.parametrize("missing", ["id", "detail", "source"])
def test_an_event_without_its_envelope_is_refused(routes: Routes, missing: str) -> None:
    event = copy.deepcopy(ALARM)
    del event[missing]
    with pytest.raises(NotAnEvent):
        read_event(event, routes)


def test_check_config_names_a_suggested_command_kajitori_would_not_understand() -> None:
    from adapters.bootstrap import config_problems

    data = demo_data()
    data["events"]["remediate"] = [
        {"alarm": "a", "suggest": ["scale out api staging +2", "scale sideways api staging"]},
        {"alarm": "b", "suggest": ["rollback api qa", "restart cache production"]},
    ]
    problems = config_problems(parse_config(data))
    assert problems[0].startswith("events.remediate.0.suggest.1: `scale sideways api staging`")
    assert (
        problems[1] == "events.remediate.1.suggest.0: `rollback api qa`: unknown environment 'qa'"
    )
    assert problems[2].startswith("events.remediate.1.suggest.1: `restart cache production`")
    assert len(problems) == 3
    assert config_problems(parse_config(demo_data())) == []
