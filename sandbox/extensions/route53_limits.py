"""Route 53: GetHostedZoneLimit, GetAccountLimit and the limits they report.

The per-zone record limit and the account limits can be lowered for a demo or a test
(`Sandbox.set_hosted_zone_limit`); going over them fails the way AWS does.
"""

from __future__ import annotations

import copy
from typing import Any

from moto.core.responses import ActionResult
from moto.route53 import urls as route53_urls
from moto.route53.exceptions import InvalidInput, Route53ClientError
from moto.route53.models import FakeZone, Route53Backend, route53_backends
from moto.route53.responses import Route53

from sandbox.extensions import model_state
from sandbox.extensions.patching import add, patch

ZONE_LIMIT_DEFAULTS = {"MAX_RRSETS_BY_ZONE": 10_000, "MAX_VPCS_ASSOCIATED_BY_ZONE": 300}
ACCOUNT_LIMIT_DEFAULTS = {
    "MAX_HEALTH_CHECKS_BY_OWNER": 200,
    "MAX_HOSTED_ZONES_BY_OWNER": 500,
    "MAX_TRAFFIC_POLICY_INSTANCES_BY_OWNER": 5,
    "MAX_REUSABLE_DELEGATION_SETS_BY_OWNER": 100,
    "MAX_TRAFFIC_POLICIES_BY_OWNER": 50,
}

_URL_PATHS = {
    r"{0}/(?P<api_version>[\d_-]+)/hostedzonelimit/(?P<zone_id>[^/]+)/(?P<limit_type>[^/]+)$": (
        Route53.dispatch
    ),
    r"{0}/(?P<api_version>[\d_-]+)/accountlimit/(?P<limit_type>[^/]+)$": Route53.dispatch,
}


class HostedZoneNotPrivateError(Route53ClientError):
    def __init__(self, zone_id: str) -> None:
        super().__init__(
            "HostedZoneNotPrivate", f"The specified hosted zone {zone_id} is not a private zone."
        )


class TooManyHostedZonesError(Route53ClientError):
    def __init__(self, limit: int) -> None:
        super().__init__(
            "TooManyHostedZones",
            f"This operation would exceed the limit of {limit} hosted zones for this account.",
        )


class RecordLimitExceededError(Route53ClientError):
    def __init__(self, zone_id: str, limit: int) -> None:
        super().__init__(
            "InvalidChangeBatch",
            f"[Tried to create resource record sets in hosted zone {zone_id}, but the zone's "
            f"limit of {limit} resource record sets would be exceeded.]",
        )


def _zone_limits(zone: FakeZone) -> dict[str, int]:
    return model_state.get_or_create(zone, "limits", lambda: dict(ZONE_LIMIT_DEFAULTS))


def _account_limits(backend: Route53Backend) -> dict[str, int]:
    return model_state.get_or_create(
        backend, "account_limits", lambda: dict(ACCOUNT_LIMIT_DEFAULTS)
    )


def _find_zone(backend: Route53Backend, zone: str) -> FakeZone:
    """A zone by id (`Z…`, `/hostedzone/Z…`) or by name (`example.internal.`)."""
    name = zone if zone.endswith(".") else zone + "."
    for candidate in backend.zones.values():
        if candidate.name == name:
            return candidate
    found: FakeZone = backend.get_hosted_zone(zone)
    return found


def set_hosted_zone_limit(account_id: str, zone: str, limit_type: str, value: int) -> None:
    if limit_type not in ZONE_LIMIT_DEFAULTS:
        raise ValueError(f"unknown hosted zone limit type {limit_type!r}")
    backend = route53_backends[account_id]["aws"]
    _zone_limits(_find_zone(backend, zone))[limit_type] = int(value)


def set_account_limit(account_id: str, limit_type: str, value: int) -> None:
    if limit_type not in ACCOUNT_LIMIT_DEFAULTS:
        raise ValueError(f"unknown Route 53 account limit type {limit_type!r}")
    _account_limits(route53_backends[account_id]["aws"])[limit_type] = int(value)


def _account_usage(backend: Route53Backend, limit_type: str) -> int:
    usage = {
        "MAX_HEALTH_CHECKS_BY_OWNER": len(backend.health_checks),
        "MAX_HOSTED_ZONES_BY_OWNER": len(backend.zones),
        "MAX_REUSABLE_DELEGATION_SETS_BY_OWNER": sum(
            1 for d in backend.delegation_sets.values() if d.id
        ),
    }
    return usage.get(limit_type, 0)


def _get_hosted_zone_limit(self: Route53) -> ActionResult:
    zone_id = self._get_param("HostedZoneId")
    limit_type = self._get_param("Type")
    zone = self.backend.get_hosted_zone(zone_id)
    if limit_type not in ZONE_LIMIT_DEFAULTS:
        raise InvalidInput(f"Invalid limit type: {limit_type}")
    if limit_type == "MAX_VPCS_ASSOCIATED_BY_ZONE":
        if not zone.private_zone:
            raise HostedZoneNotPrivateError(zone_id)
        count = sum(1 for vpc in zone.vpcs if vpc.get("vpc_id"))
    else:
        count = len(zone.rrsets)
    limit = _zone_limits(zone)[limit_type]
    return ActionResult({"Limit": {"Type": limit_type, "Value": limit}, "Count": count})


def _get_account_limit(self: Route53) -> ActionResult:
    limit_type = self._get_param("Type")
    if limit_type not in ACCOUNT_LIMIT_DEFAULTS:
        raise InvalidInput(f"Invalid limit type: {limit_type}")
    limit = _account_limits(self.backend)[limit_type]
    count = _account_usage(self.backend, limit_type)
    return ActionResult({"Limit": {"Type": limit_type, "Value": limit}, "Count": count})


def install() -> None:
    for path, handler in _URL_PATHS.items():
        route53_urls.url_paths.setdefault(path, handler)

    def wrap_create_hosted_zone(original: Any) -> Any:
        def create_hosted_zone(self: Route53Backend, *args: Any, **kwargs: Any) -> Any:
            limit = _account_limits(self)["MAX_HOSTED_ZONES_BY_OWNER"]
            if len(self.zones) >= limit:
                raise TooManyHostedZonesError(limit)
            return original(self, *args, **kwargs)

        return create_hosted_zone

    def wrap_change_resource_record_sets(original: Any) -> Any:
        def change_resource_record_sets(
            self: Route53Backend, zoneid: str, change_list: list[dict[str, Any]]
        ) -> None:
            zone = self.get_hosted_zone(zoneid)
            before = (copy.deepcopy(zone.rrsets), copy.deepcopy(zone.rr_changes))
            original(self, zoneid, change_list)
            limit = _zone_limits(zone)["MAX_RRSETS_BY_ZONE"]
            if len(zone.rrsets) > limit and len(zone.rrsets) > len(before[0]):
                zone.rrsets, zone.rr_changes = before
                raise RecordLimitExceededError(zone.resource_id, limit)

        return change_resource_record_sets

    add(Route53, "get_hosted_zone_limit", _get_hosted_zone_limit)
    add(Route53, "get_account_limit", _get_account_limit)
    patch(Route53Backend, "create_hosted_zone", wrap_create_hosted_zone)
    patch(Route53Backend, "change_resource_record_sets", wrap_change_resource_record_sets)
