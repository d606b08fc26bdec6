"""Service Quotas: AWS default values, applied values, and the four read APIs.

moto only knows the `vpc` defaults and answers GetServiceQuota with the default value.
Real AWS answers GetServiceQuota only for quotas with an applied value and raises
NoSuchResourceException otherwise, so that clients fall back to GetAWSDefaultServiceQuota.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from moto.core.exceptions import JsonRESTError
from moto.core.utils import utcnow
from moto.moto_api._internal import mock_random
from moto.servicequotas.models import ServiceQuotasBackend, servicequotas_backends
from moto.servicequotas.resources.default_quotas.vpc import VPC_DEFAULT_QUOTAS
from moto.servicequotas.responses import ServiceQuotasResponse

from sandbox.extensions import model_state
from sandbox.extensions.patching import add, patch

EC2_STANDARD_VCPUS = "L-1216C47A"
EC2_ELASTIC_IPS = "L-0263D0A3"
VPCS_PER_REGION = "L-F678F1CE"
ALBS_PER_REGION = "L-53DA6B97"
TARGET_GROUPS_PER_REGION = "L-B22855CB"
AUTO_SCALING_GROUPS_PER_REGION = "L-CDE20ADC"

SERVICE_NAMES = {
    "ec2": "Amazon Elastic Compute Cloud (Amazon EC2)",
    "vpc": "Amazon Virtual Private Cloud (Amazon VPC)",
    "elasticloadbalancing": "Elastic Load Balancing (ELB)",
    "autoscaling": "Amazon EC2 Auto Scaling",
}


@dataclass(frozen=True)
class QuotaDefinition:
    service_code: str
    quota_code: str
    name: str
    default: float
    adjustable: bool = True
    usage_metric: dict[str, Any] | None = None


_VCPU_USAGE = {
    "MetricNamespace": "AWS/Usage",
    "MetricName": "ResourceCount",
    "MetricDimensions": {
        "Service": "EC2",
        "Type": "Resource",
        "Resource": "vCPU",
        "Class": "Standard/OnDemand",
    },
    "MetricStatisticRecommendation": "Maximum",
}

QUOTAS: tuple[QuotaDefinition, ...] = (
    QuotaDefinition(
        "ec2",
        EC2_STANDARD_VCPUS,
        "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances",
        5.0,
        usage_metric=_VCPU_USAGE,
    ),
    QuotaDefinition("ec2", EC2_ELASTIC_IPS, "EC2-VPC Elastic IPs", 5.0),
    *(
        QuotaDefinition(
            "vpc",
            str(q["QuotaCode"]),
            str(q["QuotaName"]),
            float(str(q["Value"])),
            bool(q["Adjustable"]),
        )
        for q in VPC_DEFAULT_QUOTAS
    ),
    QuotaDefinition(
        "elasticloadbalancing", ALBS_PER_REGION, "Application Load Balancers per Region", 50.0
    ),
    QuotaDefinition(
        "elasticloadbalancing", TARGET_GROUPS_PER_REGION, "Target Groups per Region", 3000.0
    ),
    QuotaDefinition(
        "autoscaling", AUTO_SCALING_GROUPS_PER_REGION, "Auto Scaling groups per region", 500.0
    ),
)

_BY_CODE = {(q.service_code, q.quota_code): q for q in QUOTAS}


class NoSuchResourceError(JsonRESTError):
    def __init__(self, message: str = "") -> None:
        super().__init__("NoSuchResourceException", message)


class UnknownServiceError(NoSuchResourceError):
    def __init__(self) -> None:
        super().__init__("The request failed because the specified service does not exist.")


class IllegalArgumentError(JsonRESTError):
    def __init__(self, message: str) -> None:
        super().__init__("IllegalArgumentException", message)


def _definition(service_code: str, quota_code: str) -> QuotaDefinition:
    if service_code not in SERVICE_NAMES:
        raise UnknownServiceError()
    definition = _BY_CODE.get((service_code, quota_code))
    if definition is None:
        raise NoSuchResourceError()
    return definition


def _applied(backend: ServiceQuotasBackend) -> dict[tuple[str, str], float]:
    applied: dict[tuple[str, str], float] = model_state.get_or_create(backend, "applied", dict)
    return applied


def _quota(
    backend: ServiceQuotasBackend, definition: QuotaDefinition, value: float, *, default: bool
) -> dict[str, Any]:
    account = "" if default else backend.account_id
    quota: dict[str, Any] = {
        "ServiceCode": definition.service_code,
        "ServiceName": SERVICE_NAMES[definition.service_code],
        "QuotaArn": (
            f"arn:aws:servicequotas:{backend.region_name}:{account}:"
            f"{definition.service_code}/{definition.quota_code}"
        ),
        "QuotaCode": definition.quota_code,
        "QuotaName": definition.name,
        "Value": float(value),
        "Unit": "None",
        "Adjustable": definition.adjustable,
        "GlobalQuota": False,
        "QuotaAppliedAtLevel": "ACCOUNT",
    }
    if definition.usage_metric is not None:
        quota["UsageMetric"] = definition.usage_metric
    return quota


def set_applied_quota(
    account_id: str, region: str, service_code: str, quota_code: str, value: float
) -> None:
    backend = servicequotas_backends[account_id][region]
    _definition(service_code, quota_code)
    _applied(backend)[(service_code, quota_code)] = float(value)


def quota_value(account_id: str, region: str, service_code: str, quota_code: str) -> float:
    """The value in force: the applied value if there is one, else the AWS default."""
    backend = servicequotas_backends[account_id][region]
    applied = _applied(backend).get((service_code, quota_code))
    if applied is not None:
        return applied
    return _BY_CODE[(service_code, quota_code)].default


def _page(items: list[dict[str, Any]], params: dict[str, Any]) -> dict[str, Any]:
    start = int(params.get("NextToken") or 0)
    size = int(params.get("MaxResults") or 100)
    result: dict[str, Any] = {"Quotas": items[start : start + size]}
    if start + size < len(items):
        result["NextToken"] = str(start + size)
    return result


# Response handlers. moto dispatches an action to the method of the same (snake_case) name.


def _get_service_quota(self: ServiceQuotasResponse) -> str:
    params = json.loads(self.body)
    definition = _definition(str(params.get("ServiceCode")), str(params.get("QuotaCode")))
    applied = _applied(self.backend).get((definition.service_code, definition.quota_code))
    if applied is None:
        raise NoSuchResourceError()
    return json.dumps({"Quota": _quota(self.backend, definition, applied, default=False)})


def _get_aws_default_service_quota(self: ServiceQuotasResponse) -> str:
    params = json.loads(self.body)
    definition = _definition(str(params.get("ServiceCode")), str(params.get("QuotaCode")))
    quota = _quota(self.backend, definition, definition.default, default=True)
    return json.dumps({"Quota": quota})


def _list_service_quotas(self: ServiceQuotasResponse) -> str:
    params = json.loads(self.body)
    service_code = str(params.get("ServiceCode"))
    if service_code not in SERVICE_NAMES:
        raise UnknownServiceError()
    applied = _applied(self.backend)
    quotas = [
        _quota(self.backend, q, applied[(q.service_code, q.quota_code)], default=False)
        for q in QUOTAS
        if q.service_code == service_code and (q.service_code, q.quota_code) in applied
    ]
    return json.dumps(_page(quotas, params))


def _list_aws_default_service_quotas(self: ServiceQuotasResponse) -> str:
    params = json.loads(self.body)
    service_code = str(params.get("ServiceCode"))
    if service_code not in SERVICE_NAMES:
        raise UnknownServiceError()
    quotas = [
        _quota(self.backend, q, q.default, default=True)
        for q in QUOTAS
        if q.service_code == service_code
    ]
    return json.dumps(_page(quotas, params))


def _list_services(self: ServiceQuotasResponse) -> str:
    services = [{"ServiceCode": code, "ServiceName": name} for code, name in SERVICE_NAMES.items()]
    return json.dumps({"Services": services})


def _request_service_quota_increase(self: ServiceQuotasResponse) -> str:
    """Approved at once: the sandbox has nobody to review the request."""
    params = json.loads(self.body)
    definition = _definition(str(params.get("ServiceCode")), str(params.get("QuotaCode")))
    desired = float(params["DesiredValue"])
    if not definition.adjustable:
        raise IllegalArgumentError(f"Quota {definition.quota_code} is not adjustable.")
    key = (definition.service_code, definition.quota_code)
    current = _applied(self.backend).get(key, definition.default)
    if desired <= current:
        raise IllegalArgumentError(
            f"Requested value {desired} must be greater than the current value {current}."
        )
    _applied(self.backend)[key] = desired
    now = utcnow().timestamp()
    return json.dumps(
        {
            "RequestedQuota": {
                "Id": mock_random.get_random_hex(32),
                "ServiceCode": definition.service_code,
                "ServiceName": SERVICE_NAMES[definition.service_code],
                "QuotaCode": definition.quota_code,
                "QuotaName": definition.name,
                "DesiredValue": desired,
                "Status": "APPROVED",
                "Created": now,
                "LastUpdated": now,
                "Requester": f"arn:aws:iam::{self.backend.account_id}:root",
                "QuotaArn": (
                    f"arn:aws:servicequotas:{self.backend.region_name}:"
                    f"{self.backend.account_id}:{definition.service_code}/{definition.quota_code}"
                ),
                "GlobalQuota": False,
                "Unit": "None",
                "QuotaRequestedAtLevel": "ACCOUNT",
            }
        }
    )


def install() -> None:
    patch(ServiceQuotasResponse, "get_service_quota", lambda _: _get_service_quota)
    add(ServiceQuotasResponse, "get_aws_default_service_quota", _get_aws_default_service_quota)
    add(ServiceQuotasResponse, "list_service_quotas", _list_service_quotas)
    patch(
        ServiceQuotasResponse,
        "list_aws_default_service_quotas",
        lambda _: _list_aws_default_service_quotas,
    )
    add(ServiceQuotasResponse, "list_services", _list_services)
    add(ServiceQuotasResponse, "request_service_quota_increase", _request_service_quota_increase)
