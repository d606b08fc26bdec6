"""CloudWatch: an alarm that changes state sends "CloudWatch Alarm State Change" to
EventBridge's default bus.

AWS sends this event for every state change of an alarm (SetAlarmState included), and
guarantees its delivery; moto changes the state and sends nothing. The event's shape is
AWS's documented one ("State change for a single-metric alarm", CloudWatch User Guide,
"Alarm events and EventBridge":
https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/cloudwatch-and-eventbridge.html).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from moto.cloudwatch.models import Alarm, CloudWatchBackend
from moto.events.models import events_backends

from sandbox.extensions.patching import patch


def _timestamp(value: datetime) -> str:
    # AWS writes 2019-10-02T17:04:40.989+0000
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}+0000"


def _state(value: str, reason: str, reason_data: str, at: datetime) -> dict[str, Any]:
    state = {"value": value, "reason": reason, "timestamp": _timestamp(at)}
    if reason_data and reason_data != "{}":
        state["reasonData"] = reason_data
    return state


def state_change_event(
    alarm: Alarm, previous: dict[str, Any], current: dict[str, Any]
) -> dict[str, Any]:
    """The PutEvents entry for an alarm's state change."""
    metric: dict[str, Any] = {
        "id": "m1",
        "metricStat": {
            "metric": {
                "dimensions": {d.name: d.value for d in alarm.dimensions},
                "name": alarm.metric_name,
                "namespace": alarm.namespace,
            },
            "period": alarm.period,
            "stat": alarm.statistic,
        },
        "returnData": True,
    }
    detail = {
        "alarmName": alarm.name,
        "configuration": {"description": alarm.description or "", "metrics": [metric]},
        "previousState": previous,
        "state": current,
    }
    return {
        "Source": "aws.cloudwatch",
        "DetailType": "CloudWatch Alarm State Change",
        "Detail": json.dumps(detail),
        "Resources": [alarm.alarm_arn],
    }


def install() -> None:
    def wrap_set_alarm_state(original: Any) -> Any:
        def set_alarm_state(
            self: CloudWatchBackend,
            alarm_name: str,
            reason: str,
            reason_data: str,
            state_value: str,
        ) -> None:
            alarm = self.alarms.get(alarm_name)
            before = (
                None
                if alarm is None
                else _state(
                    alarm.state_value,
                    alarm.state_reason,
                    alarm.state_reason_data,
                    alarm.state_updated_timestamp,
                )
            )
            original(self, alarm_name, reason, reason_data, state_value)
            alarm = self.alarms[alarm_name]
            if before is None or before["value"] == alarm.state_value:
                return  # AWS sends the event only when the state changes
            after = _state(
                alarm.state_value,
                alarm.state_reason,
                alarm.state_reason_data,
                alarm.state_updated_timestamp,
            )
            bus = events_backends[self.account_id][self.region_name]
            bus.put_events([state_change_event(alarm, before, after)])

        return set_alarm_state

    patch(CloudWatchBackend, "set_alarm_state", wrap_set_alarm_state)
