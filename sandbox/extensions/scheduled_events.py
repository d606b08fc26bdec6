"""What AWS has scheduled: EC2 instance events, RDS pending maintenance, AWS Health events.

moto has none of the three: DescribeInstanceStatus answers without `Events`, RDS
DescribePendingMaintenanceActions is not implemented, and there is no AWS Health service.
Nothing in AWS's APIs creates these (AWS schedules them), so the sandbox offers functions
for the seed and the tests, and answers the read APIs in AWS's documented shapes:

- EC2 `InstanceStatusEvent` in `InstanceStatuses[].Events` of DescribeInstanceStatus
  (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeInstanceStatus.html,
  https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_InstanceStatusEvent.html);
- RDS `ResourcePendingMaintenanceActions` from DescribePendingMaintenanceActions
  (https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_DescribePendingMaintenanceActions.html,
  https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_PendingMaintenanceAction.html);
- AWS Health `Event` from DescribeEvents and `AffectedEntity` from DescribeAffectedEntities,
  JSON-protocol calls with the header `X-Amz-Target: AWSHealth_20160804.<Operation>`
  (https://docs.aws.amazon.com/health/latest/APIReference/API_DescribeEvents.html,
  https://docs.aws.amazon.com/health/latest/APIReference/API_Event.html,
  https://docs.aws.amazon.com/health/latest/APIReference/API_DescribeAffectedEntities.html,
  https://docs.aws.amazon.com/health/latest/APIReference/API_AffectedEntity.html).
  An account-specific event belongs to one account, told by the request's access key as
  moto tells it; a public event (`eventScopeCode` PUBLIC) is seen by every account and has
  no entities. An account-specific event recorded without entities affects the account as
  a whole: its one entity is the account id ("events that have impact beyond that of the
  affected entities ... include at least one entity indicating this").

EC2 and RDS state lives on moto's model objects and goes away with them on reset; the
Health events live here, process-wide like moto's backends, and `clear_health_events`
drops them.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, ClassVar

from moto.core.responses import ActionResult
from moto.ec2.models import ec2_backends
from moto.iam.models import get_account_id_from
from moto.moto_api._internal import mock_random
from moto.rds.models import RDSBackend, rds_backends
from moto.rds.responses import RDSResponse

from sandbox.extensions import model_state
from sandbox.extensions.patching import add

EC2_EVENT_CODES = (
    "instance-reboot",
    "system-reboot",
    "system-maintenance",
    "instance-retirement",
    "instance-stop",
)
RDS_ACTIONS = (
    "ca-certificate-rotation",
    "db-upgrade",
    "hardware-maintenance",
    "os-upgrade",
    "serverless-platform-version-update",
    "system-update",
)
HEALTH_CATEGORIES = ("issue", "accountNotification", "scheduledChange", "investigation")
HEALTH_TARGET_PREFIX = "AWSHealth_20160804."


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# EC2 ------------------------------------------------------------------------------------


def schedule_instance_event(
    account_id: str,
    region: str,
    instance_id: str,
    code: str,
    *,
    not_before: datetime,
    not_after: datetime | None = None,
    description: str = "",
) -> str:
    """Schedule an event on an instance, as AWS does; returns its `InstanceEventId`."""
    if code not in EC2_EVENT_CODES:
        raise ValueError(f"unknown EC2 event code {code!r}; one of {', '.join(EC2_EVENT_CODES)}")
    instance = ec2_backends[account_id][region].get_instance(instance_id)
    event_id = f"instance-event-{mock_random.get_random_hex(17)}"
    event: dict[str, Any] = {
        "InstanceEventId": event_id,
        "Code": code,
        "Description": description or _EC2_DESCRIPTIONS[code],
        "NotBefore": _utc(not_before),
    }
    if not_after is not None:
        event["NotAfter"] = _utc(not_after)
    events: list[dict[str, Any]] = model_state.api_field(instance, "events") or []
    model_state.set_api_field(instance, "events", [*events, event])
    return event_id


_EC2_DESCRIPTIONS = {
    "instance-reboot": "The instance is scheduled for a reboot",
    "system-reboot": "The system is scheduled for a reboot",
    "system-maintenance": "The system is scheduled for maintenance",
    "instance-retirement": "The instance is running on degraded hardware",
    "instance-stop": "The instance is scheduled to be stopped",
}


# RDS ------------------------------------------------------------------------------------


def _rds_resource(backend: RDSBackend, arn: str) -> Any:
    """The DB instance (`...:db:ID`) or cluster (`...:cluster:ID`) an ARN names."""
    parts = arn.split(":")
    if len(parts) == 7 and parts[5] == "db" and parts[6] in backend.databases:
        return backend.databases[parts[6]]
    if len(parts) == 7 and parts[5] == "cluster" and parts[6] in backend.clusters:
        return backend.clusters[parts[6]]
    raise ValueError(f"no DB instance or cluster {arn!r} in {backend.region_name}")


def schedule_db_maintenance(
    account_id: str,
    arn: str,
    action: str,
    *,
    auto_applied_after: datetime | None = None,
    forced_apply: datetime | None = None,
    description: str = "",
) -> None:
    """Make `action` pending on the DB instance or cluster `arn`."""
    if action not in RDS_ACTIONS:
        raise ValueError(f"unknown RDS maintenance action {action!r}; one of {RDS_ACTIONS}")
    region = arn.split(":")[3]
    resource = _rds_resource(rds_backends[account_id][region], arn)
    detail: dict[str, Any] = {"Action": action}
    if auto_applied_after is not None:
        detail["AutoAppliedAfterDate"] = _utc(auto_applied_after)
    if forced_apply is not None:
        detail["ForcedApplyDate"] = _utc(forced_apply)
    # The effective date: blank without an opt-in and without either date (AWS's words).
    dates = [d for d in (detail.get("AutoAppliedAfterDate"), detail.get("ForcedApplyDate")) if d]
    if dates:
        detail["CurrentApplyDate"] = min(dates)
    if description:
        detail["Description"] = description
    pending: list[dict[str, Any]] = model_state.get_or_create(resource, "pending_actions", list)
    pending.append(detail)


def _matches(filters: dict[str, list[str]], name: str, arn: str) -> bool:
    """A filter accepts identifiers and ARNs (DescribePendingMaintenanceActions' Filters)."""
    wanted = filters.get(name)
    return wanted is None or arn in wanted or arn.rsplit(":", 1)[-1] in wanted


def _describe_pending_maintenance_actions(self: RDSResponse) -> ActionResult:
    resource_arn = self.params.get("ResourceIdentifier")
    filters = {f["Name"]: list(f["Values"]) for f in self.params.get("Filters", [])}
    found: list[dict[str, Any]] = []
    kinds: Iterable[tuple[str, Iterable[Any], Callable[[Any], str]]] = (
        ("db-instance-id", self.backend.databases.values(), lambda d: d.db_instance_arn),
        ("db-cluster-id", self.backend.clusters.values(), lambda c: c.db_cluster_arn),
    )
    for name, resources, arn_of in kinds:
        other = "db-cluster-id" if name == "db-instance-id" else "db-instance-id"
        if other in filters and name not in filters:
            continue
        for resource in resources:
            arn = arn_of(resource)
            pending: list[dict[str, Any]] = model_state.get(resource, "pending_actions", [])
            if not pending or (resource_arn and resource_arn != arn):
                continue
            if _matches(filters, name, arn):
                found.append(
                    {"ResourceIdentifier": arn, "PendingMaintenanceActionDetails": pending}
                )
    return ActionResult({"PendingMaintenanceActions": found})


# AWS Health -------------------------------------------------------------------------------


class _HealthEvent:
    def __init__(self, event: dict[str, Any], account: str | None, entities: list[str]) -> None:
        self.event = event
        self.account = account  # None: public
        self.entities = entities

    def seen_by(self, account: str) -> bool:
        return self.account is None or self.account == account


class _HealthEvents:
    lock = threading.Lock()
    events: ClassVar[list[_HealthEvent]] = []


def add_health_event(
    account_id: str,
    region: str,
    service: str,
    event_type_code: str,
    *,
    category: str,
    start: datetime,
    end: datetime | None = None,
    entities: Iterable[str] = (),
    public: bool = False,
) -> str:
    """Record an AWS Health event of the account (or, `public`, of everyone in the region)
    affecting `entities` (instance ids, DB ids, ARNs); returns its ARN."""
    if category not in HEALTH_CATEGORIES:
        raise ValueError(f"unknown event category {category!r}; one of {HEALTH_CATEGORIES}")
    affected = list(entities)
    if public and affected:
        raise ValueError("a public AWS Health event has no affected entities of an account")
    suffix = mock_random.get_random_hex(12).upper()
    arn = f"arn:aws:health:{region}::event/{service}/{event_type_code}/{event_type_code}_{suffix}"
    event: dict[str, Any] = {
        "arn": arn,
        "service": service,
        "eventTypeCode": event_type_code,
        "eventTypeCategory": category,
        "region": region,
        "startTime": _utc(start),
        "lastUpdatedTime": datetime.now(UTC),
        "eventScopeCode": "PUBLIC" if public else "ACCOUNT_SPECIFIC",
    }
    if end is not None:
        event["endTime"] = _utc(end)
    with _HealthEvents.lock:
        _HealthEvents.events.append(
            _HealthEvent(event, None if public else account_id, affected or [account_id])
        )
    return arn


def clear_health_events() -> None:
    with _HealthEvents.lock:
        _HealthEvents.events.clear()


def _status(event: dict[str, Any], now: datetime) -> str:
    end: datetime | None = event.get("endTime")
    if end is not None and end <= now:
        return "closed"
    return "upcoming" if event["startTime"] > now else "open"


def _health_filter_keeps(event: dict[str, Any], wanted: dict[str, Any]) -> bool:
    checks = {
        "regions": event["region"],
        "services": event["service"],
        "eventTypeCodes": event["eventTypeCode"],
        "eventTypeCategories": event["eventTypeCategory"],
        "eventStatusCodes": event["statusCode"],
        "eventArns": event["arn"],
    }
    return all(not wanted.get(key) or value in wanted[key] for key, value in checks.items())


_TOKEN_PREFIX = "events-from-"  # AWS's tokens are 4 characters or more


def _page(request: dict[str, Any], items: list[dict[str, Any]], key: str) -> dict[str, Any]:
    token = str(request.get("nextToken") or "")
    start = int(token.removeprefix(_TOKEN_PREFIX)) if token else 0
    size = int(request.get("maxResults") or 10)
    page = items[start : start + size]
    result: dict[str, Any] = {
        key: [
            {k: v.timestamp() if isinstance(v, datetime) else v for k, v in e.items()} for e in page
        ]
    }
    if start + size < len(items):
        result["nextToken"] = f"{_TOKEN_PREFIX}{start + size}"
    return result


def describe_health_events(request: dict[str, Any], account: str) -> dict[str, Any]:
    """DescribeEvents: the account's (and public) events the filter keeps, most recently
    updated first."""
    now = datetime.now(UTC)
    with _HealthEvents.lock:
        events = [
            {**e.event, "statusCode": _status(e.event, now)}
            for e in _HealthEvents.events
            if e.seen_by(account)
        ]
    wanted = request.get("filter") or {}
    kept = [e for e in events if _health_filter_keeps(e, wanted)]
    kept.sort(key=lambda e: e["lastUpdatedTime"], reverse=True)
    return _page(request, kept, "events")


def describe_affected_entities(request: dict[str, Any], account: str) -> dict[str, Any]:
    """DescribeAffectedEntities: the entities of the events named (1 to 10 ARNs)."""
    wanted = request.get("filter") or {}
    arns = wanted.get("eventArns") or []
    if not 1 <= len(arns) <= 10:
        raise ValueError("filter.eventArns must name 1 to 10 events")
    values = set(wanted.get("entityValues") or [])
    with _HealthEvents.lock:
        chosen = [
            e for e in _HealthEvents.events if e.event["arn"] in arns and e.account == account
        ]
    found = [
        {
            "entityArn": f"arn:aws:health:{e.event['region']}:{account}:entity/{index}",
            "eventArn": e.event["arn"],
            "entityValue": value,
            "awsAccountId": account,
            "lastUpdatedTime": e.event["lastUpdatedTime"],
            "statusCode": "IMPAIRED" if e.event["eventTypeCategory"] == "issue" else "PENDING",
        }
        for e in chosen
        for index, value in enumerate(e.entities)
        if not values or value in values
    ]
    found.sort(key=lambda e: e["lastUpdatedTime"], reverse=True)
    return _page(request, found, "entities")


_ACCESS_KEY = re.compile(r"Credential=([^/]+)/")


def _account_of(environ: dict[str, Any]) -> str:
    """The account of the request's access key, as moto tells it (assumed-role keys are
    the role's account)."""
    match = _ACCESS_KEY.search(str(environ.get("HTTP_AUTHORIZATION", "")))
    return get_account_id_from(match.group(1) if match else "AKIAEXAMPLE")


class HealthApi:
    """WSGI middleware that answers AWS Health's JSON calls before moto, which has none."""

    def __init__(self, app: Any) -> None:
        self._app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
        if not target.startswith(HEALTH_TARGET_PREFIX):
            return self._app(environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length else b""
        operation = target[len(HEALTH_TARGET_PREFIX) :]
        status = "200 OK"
        try:
            request = json.loads(raw or b"{}")
            operations = {
                "DescribeEvents": describe_health_events,
                "DescribeAffectedEntities": describe_affected_entities,
            }
            answer = operations.get(operation)
            if answer is None:
                status = "400 Bad Request"
                body: dict[str, Any] = {
                    "__type": "UnsupportedOperation",
                    "message": (
                        "the sandbox's AWS Health answers DescribeEvents and "
                        f"DescribeAffectedEntities, not {operation}"
                    ),
                }
            else:
                body = answer(request, _account_of(environ))
        except (ValueError, TypeError) as error:
            status = "400 Bad Request"
            body = {"__type": "InvalidRequestException", "message": str(error)}
        payload = json.dumps(body).encode()
        start_response(
            status,
            [
                ("Content-Type", "application/x-amz-json-1.1"),
                ("Content-Length", str(len(payload))),
                ("x-amzn-RequestId", mock_random.get_random_hex(32)),
            ],
        )
        return [payload]


def install() -> None:
    add(RDSResponse, "describe_pending_maintenance_actions", _describe_pending_maintenance_actions)
