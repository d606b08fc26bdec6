"""The arithmetic behind scaling: headroom, spreading over zones, scale-in order, crossings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.errors import Refused
from bot.polling import Polling
from bot.ports.capacity import Instance, LimitUsage, Quota, is_standard_on_demand
from commands.capacity.sizing import (
    Headroom,
    check_headroom,
    crossed_level,
    newest_first,
    spread,
)

VCPUS = Quota(
    service_code="ec2", code="L-1216C47A", name="Running On-Demand", value=64, applied=True
)
T0 = datetime(2025, 1, 1, tzinfo=UTC)


def instance(id: str, subnet: str, zone: str, minutes: int = 0) -> Instance:
    return Instance(
        id=id,
        instance_type="t3.medium",
        state="running",
        architecture="x86_64",
        availability_zone=zone,
        subnet_id=subnet,
        launched_at=T0 + timedelta(minutes=minutes),
    )


def test_headroom_refusal_names_the_numbers_and_the_quota_code() -> None:
    with pytest.raises(Refused) as refused:
        check_headroom(8, Headroom(VCPUS, used=60), "vCPUs", "ap-northeast-1")
    assert refused.value.message == ("needs 8 vCPUs, 4 free of 64 (L-1216C47A) in ap-northeast-1")
    assert "L-1216C47A" in (refused.value.hint or "")


def test_headroom_that_fits_is_reported_for_the_dry_run() -> None:
    line = check_headroom(4, Headroom(VCPUS, used=60), "vCPUs", "ap-northeast-1")
    assert line == "quota: needs 4 vCPUs, 4 free of 64 (L-1216C47A) in ap-northeast-1"


def test_usage_over_the_quota_leaves_no_headroom() -> None:
    assert Headroom(VCPUS, used=70).free == 0


def test_spread_fills_the_emptier_zone_first() -> None:
    zones = {"subnet-a": "zone-a", "subnet-c": "zone-c"}
    existing = [instance("i-1", "subnet-a", "zone-a"), instance("i-2", "subnet-a", "zone-a")]
    assert spread(zones, existing, 2) == {"subnet-c": 2}
    assert spread(zones, existing, 4) == {"subnet-c": 3, "subnet-a": 1}


def test_spread_balances_subnets_within_a_zone() -> None:
    zones = {"subnet-a1": "zone-a", "subnet-a2": "zone-a", "subnet-c": "zone-c"}
    assert spread(zones, [], 3) == {"subnet-a1": 1, "subnet-c": 1, "subnet-a2": 1}


def test_scale_in_takes_the_newest_instances() -> None:
    fleet = [instance(f"i-{m}", "subnet-a", "zone-a", minutes=m) for m in (5, 1, 9, 3)]
    assert [i.id for i in newest_first(fleet, 2)] == ["i-9", "i-5"]


def test_standard_bucket_families() -> None:
    assert is_standard_on_demand("t3.medium")
    assert is_standard_on_demand("m7i.xlarge")
    assert not is_standard_on_demand("g5.xlarge")
    assert not is_standard_on_demand("inf2.xlarge")
    assert not is_standard_on_demand("mac2.metal")


@pytest.mark.parametrize(
    ("percent", "previous", "level"),
    [
        (50, 0, 0),
        (80, 0, 80),
        (95, 0, 90),
        (120, 80, 100),
        (78, 80, 80),  # wavering just under 80% is not a new crossing
        (74, 80, 0),
        (88, 90, 90),
        (84, 90, 80),
    ],
)
def test_crossed_level_goes_up_at_once_and_down_with_hysteresis(
    percent: float, previous: int, level: int
) -> None:
    assert crossed_level(percent, [80, 90, 100], previous) == level


def test_limit_usage_percent_of_an_empty_limit() -> None:
    assert LimitUsage(scope="r", name="x", used=0, limit=0).percent == 0
    assert LimitUsage(scope="r", name="x", used=1, limit=0).percent == 100


def test_poll_schedule_backs_off_to_its_longest_delay() -> None:
    delays = Polling(first=0.5, factor=2, longest=3).delays()
    assert delays == [0.5, 1.0, 2.0, 3]
