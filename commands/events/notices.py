"""AWS events as people read them: what happened, to which service in which environment,
since when, and a link to the console.

An event arrives as EventBridge delivers it to SQS (the event itself as the body), or
wrapped in an SNS notification (`Type: Notification`, the event or a CloudWatch alarm's
own SNS message in `Message`). Each kind kajitori knows is turned into a `Notice`; the
rest into a one-line notice for the default channel.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum
from fnmatch import fnmatchcase
from typing import Any
from urllib.parse import quote

from bot.config import Config
from bot.messages import Tone


class Kind(StrEnum):
    ALARM = "alarm"
    ECS_DEPLOYMENT = "ecs-deployment"
    ECS_SERVICE_ACTION = "ecs-service-action"
    ECS_TASK_STOPPED = "ecs-task-stopped"
    ASG_FAILURE = "asg-failure"
    ASG_CHANGE = "asg-change"
    RDS = "rds"
    HEALTH = "health"
    EC2 = "ec2"
    OTHER = "other"


class NotAnEvent(ValueError):
    """The body is not an AWS event kajitori can read (it says why)."""


@dataclass
class Notice:
    event_id: str
    kind: Kind
    title: str
    tone: Tone
    source: str
    detail_type: str
    region: str
    at: datetime | None = None  # since when
    console: str | None = None
    fields: dict[str, str] = field(default_factory=dict)
    env: str | None = None
    service: str | None = None
    # alarms
    alarm: str | None = None
    state: str | None = None
    previous_state: str | None = None
    reason: str = ""
    # a change to a service (an ECS deployment started, an ASG instance launched)
    change: bool = False

    @property
    def where(self) -> str:
        if self.service and self.env:
            return f"{self.service} in {self.env}"
        return self.env or ""


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    try:
        # 2019-10-02T17:04:40Z, 2019-10-02T17:04:40.989+0000
        if re.search(r"[+-]\d{4}$", text):
            text = text[:-2] + ":" + text[-2:]
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            parsed = parsedate_to_datetime(text)  # Health: "Sat, 05 Jun 2016 15:10:09 GMT"
        except (TypeError, ValueError):
            return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def unwrap(body: str) -> dict[str, Any]:
    """The event in an SQS message body (EventBridge's, or an SNS notification's)."""
    try:
        data = json.loads(body)
    except ValueError:
        raise NotAnEvent("the message is not JSON") from None
    if not isinstance(data, dict):
        raise NotAnEvent("the message is not a JSON object")
    if data.get("Type") == "Notification" and isinstance(data.get("Message"), str):
        try:
            inner = json.loads(data["Message"])
        except ValueError:
            raise NotAnEvent("the SNS notification's Message is not JSON") from None
        if not isinstance(inner, dict):
            raise NotAnEvent("the SNS notification's Message is not a JSON object")
        if "AlarmName" in inner:
            return _alarm_from_sns(inner, str(data.get("MessageId", "")))
        return inner
    return data


def _alarm_from_sns(alarm: dict[str, Any], message_id: str) -> dict[str, Any]:
    """A CloudWatch alarm's SNS message, as the EventBridge event it stands for."""
    arn = str(alarm.get("AlarmArn", ""))
    region = arn.split(":")[3] if arn.count(":") >= 5 else ""
    trigger = alarm.get("Trigger") or {}
    dimensions = {
        str(d.get("name")): str(d.get("value"))
        for d in trigger.get("Dimensions", [])
        if isinstance(d, dict)
    }
    return {
        "id": f"sns:{message_id}",
        "detail-type": "CloudWatch Alarm State Change",
        "source": "aws.cloudwatch",
        "region": region,
        "time": alarm.get("StateChangeTime", ""),
        "resources": [arn] if arn else [],
        "detail": {
            "alarmName": alarm.get("AlarmName", ""),
            "state": {
                "value": alarm.get("NewStateValue", ""),
                "reason": alarm.get("NewStateReason", ""),
                "timestamp": alarm.get("StateChangeTime", ""),
            },
            "previousState": {"value": alarm.get("OldStateValue", "")},
            "configuration": {
                "description": alarm.get("AlarmDescription") or "",
                "metrics": [
                    {
                        "metricStat": {
                            "metric": {
                                "name": trigger.get("MetricName", ""),
                                "namespace": trigger.get("Namespace", ""),
                                "dimensions": dimensions,
                            }
                        }
                    }
                ],
            },
        },
    }


class Routes:
    """Which service and environment a resource belongs to, from the config."""

    def __init__(self, config: Config) -> None:
        self._config = config
        self.ecs: dict[tuple[str, str], tuple[str, str]] = {}
        self.asg: dict[str, tuple[str, str]] = {}
        self.rds: dict[str, tuple[str, str]] = {}
        for env_name, env in config.environments.items():
            for name, service in env.services.items():
                if service.ecs is not None:
                    self.ecs[(service.ecs.cluster, service.ecs.service)] = (name, env_name)
                if service.asg is not None:
                    self.asg[service.asg.name] = (name, env_name)
            for db_name, database in env.databases.items():
                if database.cluster is not None:
                    self.rds[database.cluster] = (db_name, env_name)

    def environment_of(self, text: str) -> str | None:
        """An environment named as a word of `text` (`api-5xx-staging`)."""
        words = set(re.split(r"[^A-Za-z0-9]+", text.lower()))
        for name in self._config.environments:
            if name.lower() in words:
                return name
        return None

    def service_in(self, text: str, env: str) -> str | None:
        words = set(re.split(r"[^A-Za-z0-9]+", text.lower()))
        for name in self._config.environments[env].services:
            if name.lower() in words:
                return name
        return None

    def resource(self, value: str) -> tuple[str, str] | None:
        """An ARN or a name of an ECS service, Auto Scaling group or RDS cluster."""
        ecs = re.search(r":service/([^/]+)/([^/]+)$", value)
        if ecs and (ecs.group(1), ecs.group(2)) in self.ecs:
            return self.ecs[(ecs.group(1), ecs.group(2))]
        asg = re.search(r"autoScalingGroupName/(.+)$", value)
        if asg and asg.group(1) in self.asg:
            return self.asg[asg.group(1)]
        rds = re.search(r":rds:[^:]*:[^:]*:(?:cluster|db):(.+)$", value)
        if rds and rds.group(1) in self.rds:
            return self.rds[rds.group(1)]
        for table in (self.asg, self.rds):
            if value in table:
                return table[value]
        return None


def console_base(region: str) -> str:
    return f"https://{region}.console.aws.amazon.com"


def read_event(event: dict[str, Any], routes: Routes) -> Notice:
    """The notice for one EventBridge event (raises NotAnEvent when it is not one)."""
    event_id = event.get("id")
    detail_type = event.get("detail-type")
    source = event.get("source")
    detail = event.get("detail")
    if not isinstance(event_id, str) or not event_id:
        raise NotAnEvent("the event has no id")
    if not isinstance(detail_type, str) or not isinstance(source, str):
        raise NotAnEvent("the event has no source or detail-type")
    if not isinstance(detail, dict):
        raise NotAnEvent("the event has no detail object")
    region = str(event.get("region", ""))
    resources = [str(r) for r in event.get("resources") or [] if isinstance(r, str)]
    notice = Notice(
        event_id=event_id,
        kind=Kind.OTHER,
        title=f"{detail_type} ({source})",
        tone=Tone.INFO,
        source=source,
        detail_type=detail_type,
        region=region,
        at=_time(event.get("time")),
    )
    reader = _READERS.get((source, detail_type))
    if reader is not None:
        reader(notice, detail, resources, routes)
    else:
        _route_resources(notice, resources, routes)
    return notice


def _route_resources(notice: Notice, resources: list[str], routes: Routes) -> None:
    for resource in resources:
        found = routes.resource(resource)
        if found is not None:
            notice.service, notice.env = found
            return


def _alarm(notice: Notice, detail: dict[str, Any], resources: list[str], routes: Routes) -> None:
    name = str(detail.get("alarmName", ""))
    state = detail.get("state") or {}
    previous = detail.get("previousState") or {}
    notice.kind = Kind.ALARM
    notice.alarm = name
    notice.state = str(state.get("value", ""))
    notice.previous_state = str(previous.get("value", "")) or None
    notice.reason = str(state.get("reason", ""))
    notice.at = _time(state.get("timestamp")) or notice.at
    notice.tone = {"ALARM": Tone.FAILURE, "OK": Tone.SUCCESS}.get(notice.state, Tone.WARNING)
    notice.title = f"{notice.state} {name}"
    config = detail.get("configuration") or {}
    description = str(config.get("description") or "")
    if description:
        notice.fields["what"] = description
    dimensions: dict[str, str] = {}
    for metric in config.get("metrics") or []:
        stat = (metric or {}).get("metricStat") or {}
        dims = (stat.get("metric") or {}).get("dimensions") or {}
        if isinstance(dims, dict):
            dimensions.update({str(k): str(v) for k, v in dims.items()})
    found: tuple[str, str] | None = None
    if "ClusterName" in dimensions and "ServiceName" in dimensions:
        found = routes.ecs.get((dimensions["ClusterName"], dimensions["ServiceName"]))
    if found is None and "AutoScalingGroupName" in dimensions:
        found = routes.asg.get(dimensions["AutoScalingGroupName"])
    if found is None and "DBClusterIdentifier" in dimensions:
        found = routes.rds.get(dimensions["DBClusterIdentifier"])
    if found is not None:
        notice.service, notice.env = found
    else:
        notice.env = routes.environment_of(name)
        if notice.env is not None:
            notice.service = routes.service_in(name, notice.env)
    region = notice.region or "us-east-1"
    notice.console = (
        f"{console_base(region)}/cloudwatch/home?region={region}#alarmsV2:alarm/{quote(name)}"
    )


def _ecs_service(notice: Notice, resources: list[str], routes: Routes) -> str:
    for resource in resources:
        match = re.search(r":service/([^/]+)/([^/]+)$", resource)
        if match:
            cluster, service = match.group(1), match.group(2)
            found = routes.ecs.get((cluster, service))
            if found is not None:
                notice.service, notice.env = found
            region = notice.region
            notice.console = (
                f"{console_base(region)}/ecs/v2/clusters/{cluster}/services/{service}"
                f"?region={region}"
            )
            return f"{cluster}/{service}"
    return resources[0] if resources else "?"


def _ecs_deployment(
    notice: Notice, detail: dict[str, Any], resources: list[str], routes: Routes
) -> None:
    notice.kind = Kind.ECS_DEPLOYMENT
    name = str(detail.get("eventName", ""))
    target = _ecs_service(notice, resources, routes)
    notice.at = _time(detail.get("updatedAt")) or notice.at
    words = {
        "SERVICE_DEPLOYMENT_IN_PROGRESS": ("deployment started", Tone.PROGRESS),
        "SERVICE_DEPLOYMENT_COMPLETED": ("deployment completed", Tone.SUCCESS),
        "SERVICE_DEPLOYMENT_FAILED": ("deployment failed", Tone.FAILURE),
    }
    what, notice.tone = words.get(name, (name.lower(), Tone.INFO))
    notice.title = f"ECS {what}: {target}"
    notice.change = name == "SERVICE_DEPLOYMENT_IN_PROGRESS"
    if detail.get("reason"):
        notice.fields["reason"] = str(detail["reason"])
    if detail.get("deploymentId"):
        notice.fields["deployment"] = str(detail["deploymentId"])


def _ecs_service_action(
    notice: Notice, detail: dict[str, Any], resources: list[str], routes: Routes
) -> None:
    notice.kind = Kind.ECS_SERVICE_ACTION
    target = _ecs_service(notice, resources, routes)
    name = str(detail.get("eventName", ""))
    error = detail.get("eventType") == "ERROR"
    notice.tone = Tone.FAILURE if error else Tone.WARNING
    notice.title = f"ECS {name.lower().replace('_', ' ')}: {target}"
    if detail.get("reason"):
        notice.fields["reason"] = str(detail["reason"])


def _ecs_task(notice: Notice, detail: dict[str, Any], resources: list[str], routes: Routes) -> None:
    notice.kind = Kind.ECS_TASK_STOPPED
    cluster = str(detail.get("clusterArn", "")).rsplit("/", 1)[-1]
    group = str(detail.get("group", ""))
    service = group.removeprefix("service:") if group.startswith("service:") else ""
    found = routes.ecs.get((cluster, service)) if service else None
    if found is not None:
        notice.service, notice.env = found
    status = str(detail.get("lastStatus", ""))
    stop_code = str(detail.get("stopCode", ""))
    exited = stop_code == "EssentialContainerExited" and status == "STOPPED"
    notice.tone = Tone.FAILURE if exited else Tone.WARNING
    task = str(detail.get("taskArn", "")).rsplit("/", 1)[-1]
    notice.title = f"ECS task {status.lower() or 'stopped'}: {cluster}/{service or group} {task}"
    if detail.get("stoppedReason"):
        notice.fields["reason"] = str(detail["stoppedReason"])
    exits = [
        f"{c.get('name')} exit {c.get('exitCode')}"
        for c in detail.get("containers") or []
        if isinstance(c, dict) and c.get("exitCode") is not None
    ]
    if exits:
        notice.fields["containers"] = ", ".join(exits)
    notice.at = _time(detail.get("stoppedAt")) or notice.at
    if service:
        region = notice.region
        notice.console = (
            f"{console_base(region)}/ecs/v2/clusters/{cluster}/services/{service}?region={region}"
        )


def _asg(notice: Notice, detail: dict[str, Any], resources: list[str], routes: Routes) -> None:
    group = str(detail.get("AutoScalingGroupName", ""))
    found = routes.asg.get(group)
    if found is not None:
        notice.service, notice.env = found
    failed = notice.detail_type.endswith("Unsuccessful")
    notice.kind = Kind.ASG_FAILURE if failed else Kind.ASG_CHANGE
    notice.change = not failed
    notice.tone = Tone.FAILURE if failed else Tone.INFO
    what = notice.detail_type.removeprefix("EC2 Instance ").lower()
    notice.title = f"Auto Scaling {what}: {group}"
    instance = detail.get("EC2InstanceId")
    if instance:
        notice.fields["instance"] = str(instance)
    if detail.get("StatusMessage"):
        notice.fields["status"] = str(detail["StatusMessage"])
    if detail.get("Cause"):
        notice.fields["cause"] = str(detail["Cause"])
    notice.at = _time(detail.get("StartTime")) or notice.at
    region = notice.region
    notice.console = (
        f"{console_base(region)}/ec2/home?region={region}#AutoScalingGroupDetails:id={group}"
    )


def _health(notice: Notice, detail: dict[str, Any], resources: list[str], routes: Routes) -> None:
    notice.kind = Kind.HEALTH
    category = str(detail.get("eventTypeCategory", ""))
    code = str(detail.get("eventTypeCode", ""))
    service = str(detail.get("service", ""))
    notice.tone = {
        "issue": Tone.FAILURE,
        "scheduledChange": Tone.WARNING,
    }.get(category, Tone.INFO)
    words = {"scheduledChange": "scheduled change", "accountNotification": "account notification"}
    notice.title = f"AWS Health {words.get(category, category)}: {service} {code}".strip()
    descriptions = detail.get("eventDescription") or []
    if isinstance(descriptions, list) and descriptions and isinstance(descriptions[0], dict):
        text = str(descriptions[0].get("latestDescription", "")).strip()
        if text:
            notice.fields["what"] = text if len(text) <= 600 else text[:599] + "…"
    entities = [
        str(e.get("entityValue"))
        for e in detail.get("affectedEntities") or []
        if isinstance(e, dict) and e.get("entityValue")
    ]
    if entities:
        notice.fields["affected"] = ", ".join(entities[:10]) + (" …" if len(entities) > 10 else "")
    starts, ends = _time(detail.get("startTime")), _time(detail.get("endTime"))
    if starts is not None:
        notice.fields["starts"] = f"{starts:%Y-%m-%d %H:%M} UTC"
        notice.at = starts
    if ends is not None:
        notice.fields["ends"] = f"{ends:%Y-%m-%d %H:%M} UTC"
    _route_resources(notice, [*resources, *entities], routes)
    arn = str(detail.get("eventArn", ""))
    if arn:
        notice.console = f"https://health.aws.amazon.com/health/home#/account/event-log?eventID={quote(arn, safe='')}"


def _rds(notice: Notice, detail: dict[str, Any], resources: list[str], routes: Routes) -> None:
    notice.kind = Kind.RDS
    message = str(detail.get("Message", ""))
    source_id = str(detail.get("SourceIdentifier", ""))
    event_id = str(detail.get("EventID", ""))
    failover = "failover" in message.lower()
    notice.tone = Tone.WARNING if failover or "maintenance" in message.lower() else Tone.INFO
    notice.title = f"RDS {source_id}: {message}" if message else f"RDS event {event_id}"
    if event_id:
        notice.fields["event"] = event_id
    _route_resources(notice, [*resources, source_id], routes)
    region = notice.region
    notice.console = f"{console_base(region)}/rds/home?region={region}#database:id={source_id}"


_READERS = {
    ("aws.cloudwatch", "CloudWatch Alarm State Change"): _alarm,
    ("aws.ecs", "ECS Deployment State Change"): _ecs_deployment,
    ("aws.ecs", "ECS Service Action"): _ecs_service_action,
    ("aws.ecs", "ECS Task State Change"): _ecs_task,
    ("aws.autoscaling", "EC2 Instance Launch Unsuccessful"): _asg,
    ("aws.autoscaling", "EC2 Instance Terminate Unsuccessful"): _asg,
    ("aws.autoscaling", "EC2 Instance Launch Successful"): _asg,
    ("aws.autoscaling", "EC2 Instance Terminate Successful"): _asg,
    ("aws.health", "AWS Health Event"): _health,
    ("aws.rds", "RDS DB Instance Event"): _rds,
    ("aws.rds", "RDS DB Cluster Event"): _rds,
}


def is_ignored(notice: Notice, patterns: list[str]) -> bool:
    """`ignore` matches a detail-type, `source/detail-type` or an alarm name (`*`, `?`)."""
    names = [notice.detail_type, f"{notice.source}/{notice.detail_type}"]
    if notice.alarm:
        names.append(notice.alarm)
    return any(fnmatchcase(name, pattern) for pattern in patterns for name in names)


def worth_posting(notice: Notice) -> bool:
    """ECS task state changes are posted only for stopped tasks whose essential container
    exited; everything else kajitori reads is posted."""
    if notice.kind is Kind.ECS_TASK_STOPPED:
        return notice.tone is Tone.FAILURE
    return True
