"""The store port's contract, the same for every adapter: what is written is read back,
lists come in the promised order, and every guarded write has exactly one winner when
many callers race for it."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime, timedelta

from bot.model import (
    ApprovalRequest,
    AuditRecord,
    DbSessionRecord,
    DeployRecord,
    JobRecord,
    JobStatus,
    LockRecord,
    Origin,
    RequestKind,
    RequestStatus,
)
from bot.ports.store import EventClaim, Store

RACERS = 25


def now() -> datetime:
    return datetime.now(UTC)


ORIGIN = Origin(
    adapter="slack",
    channel="slack:C0123",
    member="slack:U1",
    thread="1712345678.000100",
    extra={"response_url": "https://hooks.slack.example/actions/1"},
)


def job(job_id: int, *, status: JobStatus = JobStatus.RUNNING, **fields: object) -> JobRecord:
    at = now()
    values: dict[str, object] = {
        "id": job_id,
        "command": f"deploy api staging v{job_id}",
        "title": f"deploy api v{job_id} to staging",
        "member": "slack:U1",
        "origin": ORIGIN,
        "threads": [ORIGIN],
        "status": status,
        "created_at": at,
        "updated_at": at,
        "runner": "replica-a",
        "lease_expires": at + timedelta(minutes=2),
    }
    values.update(fields)
    return JobRecord.model_validate(values)


def lock(key: str = "api/staging", *, lease: timedelta = timedelta(minutes=2)) -> LockRecord:
    at = now()
    return LockRecord(
        key=key,
        owner="slack:U1",
        reason="deploy v2",
        job_id=7,
        token=secrets.token_hex(8),
        acquired_at=at,
        expires_at=at + lease,
    )


def request(request_id: int) -> ApprovalRequest:
    at = now()
    return ApprovalRequest(
        id=request_id,
        kind=RequestKind.APPROVAL,
        command="deploy api production v2",
        member="slack:U1",
        origin=ORIGIN,
        env="production",
        summary="deploy api v2 to production",
        changes=["api: v1 → v2", "2 tasks replaced"],
        created_at=at,
        expires_at=at + timedelta(minutes=30),
    )


async def test_ping_answers(store: Store) -> None:
    await store.ping()


async def test_next_id_counts_from_one_per_counter(store: Store) -> None:
    assert [await store.next_id("job") for _ in range(3)] == [1, 2, 3]
    assert await store.next_id("request") == 1
    assert await store.next_id("job") == 4


async def test_next_id_is_unique_under_concurrency(store: Store) -> None:
    ids = await asyncio.gather(*(store.next_id("job") for _ in range(50)))
    assert sorted(ids) == list(range(1, 51)), ids


async def test_audit_lists_newest_first_up_to_the_limit(store: Store) -> None:
    start = now()
    for n in range(5):
        await store.add_audit(
            AuditRecord(
                at=start + timedelta(seconds=n),
                member="slack:U1",
                channel="slack:C0123",
                text=f"deploy api staging v{n} — «quoted» 🚀",
                outcome="started" if n % 2 else "refused",
                job_id=n if n % 2 else None,
                detail=f"detail {n}",
            )
        )
    latest = await store.list_audit(limit=3)
    assert [r.detail for r in latest] == ["detail 4", "detail 3", "detail 2"]
    assert latest[1].job_id == 3 and latest[0].job_id is None
    assert latest[0].text == "deploy api staging v4 — «quoted» 🚀"
    assert latest[0].at == start + timedelta(seconds=4)
    assert len(await store.list_audit()) == 5


async def test_audit_records_written_at_the_same_instant_keep_their_order(
    store: Store,
) -> None:
    at = now()
    for n in range(4):
        await store.add_audit(
            AuditRecord(at=at, member="local:alice", channel="local", text=f"c{n}", outcome="ok")
        )
    assert [r.text for r in await store.list_audit()] == ["c3", "c2", "c1", "c0"]


async def test_job_reads_back_as_written(store: Store) -> None:
    record = job(
        42,
        state={
            "step": "watching",
            "deployment": "ecs-svc/123",
            "counts": {"desired": 2, "running": 1},
            "ratio": 0.5,
            "done": [1, 2.5, None, True],
        },
    )
    await store.put_job(record)
    assert await store.get_job(42) == record
    assert await store.get_job(43) is None


async def test_put_job_replaces_the_record(store: Store) -> None:
    record = job(1)
    await store.put_job(record)
    record.status = JobStatus.SUCCEEDED
    record.summary = "deployed"
    record.ended_at = now()
    record.state["step"] = "done"
    await store.put_job(record)
    assert await store.get_job(1) == record


async def test_list_jobs_newest_first_and_running_only(store: Store) -> None:
    for n in range(1, 6):
        status = JobStatus.SUCCEEDED if n in (2, 4) else JobStatus.RUNNING
        await store.put_job(job(n, status=status))
    assert [j.id for j in await store.list_jobs(limit=3)] == [5, 4, 3]
    assert [j.id for j in await store.list_jobs(running_only=True)] == [5, 3, 1]
    assert [j.id for j in await store.list_jobs(limit=2, running_only=True)] == [5, 3]

    ended = job(5, status=JobStatus.FAILED)
    await store.put_job(ended)
    assert [j.id for j in await store.list_jobs(running_only=True)] == [3, 1]
    assert [j.id for j in await store.list_jobs()] == [5, 4, 3, 2, 1]


async def test_claim_job_takes_over_only_an_expired_lease(store: Store) -> None:
    at = now()
    await store.put_job(job(9, runner="replica-a", lease_expires=at + timedelta(seconds=30)))

    # Another replica cannot take a live job; its own runner renews it.
    assert not await store.claim_job(9, "replica-b", at + timedelta(minutes=2), at)
    renewed = at + timedelta(minutes=1)
    assert await store.claim_job(9, "replica-a", renewed, at)
    stored = await store.get_job(9)
    assert stored is not None and stored.runner == "replica-a"
    assert stored.lease_expires == renewed

    # Once the lease has run out, another replica takes over.
    later = renewed + timedelta(seconds=1)
    assert await store.claim_job(9, "replica-b", later + timedelta(minutes=2), later)
    stored = await store.get_job(9)
    assert stored is not None and stored.runner == "replica-b"
    assert stored.lease_expires == later + timedelta(minutes=2)
    assert stored.state == {} and stored.title == "deploy api v9 to staging"
    # ...and the first replica has lost it.
    assert not await store.claim_job(9, "replica-a", later + timedelta(minutes=3), later)


async def test_claim_job_refuses_ended_and_unknown_jobs(store: Store) -> None:
    at = now()
    past = at - timedelta(minutes=5)
    await store.put_job(job(3, status=JobStatus.SUCCEEDED, lease_expires=past))
    assert not await store.claim_job(3, "replica-b", at + timedelta(minutes=2), at)
    assert not await store.claim_job(404, "replica-b", at + timedelta(minutes=2), at)
    stored = await store.get_job(3)
    assert stored is not None and stored.runner == "replica-a"


async def test_claim_job_takes_a_job_that_never_had_a_lease(store: Store) -> None:
    at = now()
    await store.put_job(job(4, lease_expires=None))
    assert await store.claim_job(4, "replica-b", at + timedelta(minutes=2), at)
    stored = await store.get_job(4)
    assert stored is not None and stored.runner == "replica-b"


async def test_claim_job_race_has_one_winner(store: Store) -> None:
    at = now()
    await store.put_job(job(5, lease_expires=at - timedelta(seconds=1)))
    lease = at + timedelta(minutes=2)
    results = await asyncio.gather(
        *(store.claim_job(5, f"replica-{n}", lease, at) for n in range(RACERS))
    )
    assert results.count(True) == 1
    stored = await store.get_job(5)
    assert stored is not None and stored.runner == f"replica-{results.index(True)}"


async def test_lock_is_held_until_released_with_its_token(store: Store) -> None:
    first = lock()
    assert (await store.acquire_lock(first, now())).token == first.token
    assert await store.get_lock("api/staging") == first

    second = lock()
    holder = await store.acquire_lock(second, now())
    assert holder == first

    assert not await store.release_lock("api/staging", second.token)
    assert await store.get_lock("api/staging") == first
    assert await store.release_lock("api/staging", first.token)
    assert await store.get_lock("api/staging") is None
    assert not await store.release_lock("api/staging", first.token)

    assert (await store.acquire_lock(second, now())).token == second.token


async def test_renew_lock_needs_the_token(store: Store) -> None:
    held = lock(lease=timedelta(seconds=30))
    await store.acquire_lock(held, now())
    later = now() + timedelta(minutes=5)
    assert not await store.renew_lock("api/staging", "not-the-token", later)
    assert not await store.renew_lock("web/staging", held.token, later)
    assert await store.renew_lock("api/staging", held.token, later)
    stored = await store.get_lock("api/staging")
    assert stored is not None and stored.expires_at == later
    assert stored.token == held.token and stored.reason == "deploy v2"
    # The renewed lease protects it from a takeover it would not have survived before.
    rival = lock()
    holder = await store.acquire_lock(rival, now() + timedelta(minutes=1))
    assert holder.token == held.token


async def test_relock_changes_reason_and_lease_in_place_only_for_the_holder(
    store: Store,
) -> None:
    held = lock(lease=timedelta(seconds=30))
    await store.acquire_lock(held, now())
    later = now() + timedelta(minutes=5)
    assert await store.relock("api/staging", "not-the-token", "mine", later, now()) is None
    assert await store.relock("web/staging", held.token, "mine", later, now()) is None
    relocked = await store.relock("api/staging", held.token, "second reason", later, now())
    assert relocked is not None
    assert (relocked.token, relocked.reason, relocked.expires_at) == (
        held.token,
        "second reason",
        later,
    )
    assert await store.get_lock("api/staging") == relocked
    # A lock past its lease is free: relocking it would revive what another may take.
    assert (
        await store.relock("api/staging", held.token, "late", later, later + timedelta(seconds=1))
        is None
    )


async def test_relock_racing_a_rival_never_frees_the_lock(store: Store) -> None:
    held = lock(lease=timedelta(seconds=30))
    await store.acquire_lock(held, now())
    for attempt in range(RACERS):
        rival = lock()
        relocked, holder = await asyncio.gather(
            store.relock(
                "api/staging", held.token, f"reason {attempt}", now() + timedelta(minutes=1), now()
            ),
            store.acquire_lock(rival, now()),
        )
        assert relocked is not None and relocked.token == held.token
        assert holder.token == held.token


async def test_an_expired_lock_is_taken_over(store: Store) -> None:
    stale = lock(lease=timedelta(seconds=-1))
    await store.acquire_lock(stale, now() - timedelta(minutes=1))
    fresh = lock()
    holder = await store.acquire_lock(fresh, now())
    assert holder.token == fresh.token
    assert not await store.renew_lock("api/staging", stale.token, now() + timedelta(minutes=1))
    assert not await store.release_lock("api/staging", stale.token)


async def test_acquire_lock_race_has_one_holder(store: Store) -> None:
    wanted = [lock() for _ in range(RACERS)]
    at = now()
    holders = await asyncio.gather(*(store.acquire_lock(w, at) for w in wanted))
    tokens = {h.token for h in holders}
    assert len(tokens) == 1
    (winner,) = tokens
    assert winner in {w.token for w in wanted}
    stored = await store.get_lock("api/staging")
    assert stored is not None and stored.token == winner


async def test_list_locks_sorted_by_key(store: Store) -> None:
    for key in ("web/production", "api/staging", "worker/staging"):
        await store.acquire_lock(lock(key), now())
    assert [lk.key for lk in await store.list_locks()] == [
        "api/staging",
        "web/production",
        "worker/staging",
    ]


async def test_request_is_decided_once(store: Store) -> None:
    pending = request(11)
    await store.put_request(pending)
    assert await store.get_request(11) == pending
    at = now()
    assert await store.decide_request(11, RequestStatus.APPROVED, "slack:U2", at)
    assert not await store.decide_request(11, RequestStatus.DENIED, "slack:U3", at)
    decided = await store.get_request(11)
    assert decided is not None
    assert decided.status is RequestStatus.APPROVED
    assert decided.decided_by == "slack:U2" and decided.decided_at == at
    assert decided.changes == pending.changes and decided.origin == ORIGIN


async def test_pending_requests_are_listed_until_decided(store: Store) -> None:
    for request_id in (21, 22, 23):
        await store.put_request(request(request_id))
    assert [r.id for r in await store.list_pending_requests()] == [23, 22, 21]
    assert await store.decide_request(22, RequestStatus.DENIED, "slack:U2", now())
    assert [r.id for r in await store.list_pending_requests()] == [23, 21]


async def test_unknown_request_is_not_decided(store: Store) -> None:
    assert await store.get_request(12) is None
    assert not await store.decide_request(12, RequestStatus.APPROVED, "slack:U2", now())
    assert await store.get_request(12) is None


async def test_decide_request_race_has_one_winner(store: Store) -> None:
    await store.put_request(request(13))
    at = now()
    results = await asyncio.gather(
        *(
            store.decide_request(
                13,
                RequestStatus.APPROVED if n % 2 else RequestStatus.DENIED,
                f"slack:U{n}",
                at,
            )
            for n in range(RACERS)
        )
    )
    assert results.count(True) == 1
    winner = results.index(True)
    decided = await store.get_request(13)
    assert decided is not None and decided.decided_by == f"slack:U{winner}"
    assert decided.status is (RequestStatus.APPROVED if winner % 2 else RequestStatus.DENIED)


async def test_deploys_listed_per_service_and_environment_newest_first(store: Store) -> None:
    start = now()
    written = [
        ("api", "staging"),
        ("api", "production"),
        ("api", "staging"),
        ("web", "staging"),
        ("api", "staging"),
    ]
    for n, (service, env) in enumerate(written, start=1):
        await store.put_deploy(
            DeployRecord(
                id=n,
                service=service,
                env=env,
                version=f"v{n}",
                triggered_by="slack:U1",
                started_at=start + timedelta(seconds=n),
            )
        )
    assert [d.id for d in await store.list_deploys("api", "staging")] == [5, 3, 1]
    assert [d.id for d in await store.list_deploys("api", "staging", limit=2)] == [5, 3]
    assert [d.version for d in await store.list_deploys("api", "production")] == ["v2"]
    assert await store.list_deploys("worker", "staging") == []

    finished = (await store.list_deploys("api", "staging"))[0]
    finished.outcome, finished.ended_at = "succeeded", now()
    await store.put_deploy(finished)
    assert (await store.list_deploys("api", "staging", limit=1))[0] == finished


async def test_first_seen_is_true_once_until_expiry(store: Store) -> None:
    later = now() + timedelta(minutes=10)
    assert await store.first_seen("slack:Ev0123", later)
    assert not await store.first_seen("slack:Ev0123", later)
    assert await store.first_seen("github:7b1c-delivery", later)


async def test_first_seen_again_after_expiry(store: Store) -> None:
    assert await store.first_seen("slack:Ev0456", now() - timedelta(seconds=1))
    assert await store.first_seen("slack:Ev0456", now() + timedelta(minutes=10))
    assert not await store.first_seen("slack:Ev0456", now() + timedelta(minutes=10))


async def test_first_seen_takes_long_keys(store: Store) -> None:
    key = "ci:jenkins:" + "x" * 3000
    assert await store.first_seen(key, now() + timedelta(minutes=1))
    assert not await store.first_seen(key, now() + timedelta(minutes=1))
    assert await store.first_seen(key + "y", now() + timedelta(minutes=1))


async def test_first_seen_race_has_one_winner(store: Store) -> None:
    later = now() + timedelta(minutes=10)
    results = await asyncio.gather(
        *(store.first_seen("slack:EvRace", later) for _ in range(RACERS))
    )
    assert results.count(True) == 1


async def test_db_sessions_are_listed_by_id_and_deleted(store: Store) -> None:
    at = now()
    for n in (2, 1, 3):
        await store.put_db_session(
            DbSessionRecord(
                id=n,
                database="main",
                env="staging",
                member="local:dave",
                user=f"kj_ro_{n}",
                host="127.0.0.1",
                port=40000 + n,
                opened_at=at,
                expires_at=at + timedelta(hours=1),
                runner="replica-a",
            )
        )
    assert [s.id for s in await store.list_db_sessions()] == [1, 2, 3]
    await store.delete_db_session(2)
    await store.delete_db_session(99)
    sessions = await store.list_db_sessions()
    assert [s.id for s in sessions] == [1, 3]
    assert sessions[1].port == 40003 and sessions[1].user == "kj_ro_3"


async def test_swap_value_sets_only_from_the_expected_value(store: Store) -> None:
    key = "quota:ap-northeast-1:ec2:L-1216C47A"
    assert await store.get_value(key) is None
    assert await store.swap_value(key, None, "80")
    assert not await store.swap_value(key, None, "90")
    assert not await store.swap_value(key, "70", "90")
    assert await store.get_value(key) == "80"
    assert await store.swap_value(key, "80", "95")
    assert await store.get_value(key) == "95"
    assert await store.get_value("quota:other") is None


async def test_swap_value_race_has_one_winner(store: Store) -> None:
    await store.swap_value("level", None, "0")
    results = await asyncio.gather(
        *(store.swap_value("level", "0", str(n)) for n in range(1, RACERS + 1))
    )
    assert results.count(True) == 1
    assert await store.get_value("level") == str(results.index(True) + 1)


async def test_an_event_claim_is_a_lease_that_runs_out_unless_posted(store: Store) -> None:
    start = now()
    lease = start + timedelta(seconds=60)
    assert await store.claim_event("ev-1", "a", lease, start) is EventClaim.CLAIMED
    # While the first claim runs, a second copy is held back, not dropped.
    assert await store.claim_event("ev-1", "b", lease, start) is EventClaim.HELD
    # The claimer stopped without posting: once the lease has run out, the next one takes it.
    later = lease + timedelta(seconds=1)
    assert await store.claim_event("ev-1", "b", later + timedelta(seconds=60), later) is (
        EventClaim.CLAIMED
    )
    await store.event_posted("ev-1", later + timedelta(days=1))
    much_later = later + timedelta(hours=2)
    assert await store.claim_event("ev-1", "c", much_later, much_later) is EventClaim.POSTED


async def test_a_released_claim_is_claimed_again_and_a_stale_release_changes_nothing(
    store: Store,
) -> None:
    start = now()
    lease = start + timedelta(seconds=60)
    assert await store.claim_event("ev-2", "a", lease, start) is EventClaim.CLAIMED
    await store.release_event("ev-2", "a", start)  # posting failed
    assert await store.claim_event("ev-2", "b", lease, start) is EventClaim.CLAIMED
    await store.release_event("ev-2", "a", start)  # a's claim is long gone: b's stays
    assert await store.claim_event("ev-2", "c", lease, start) is EventClaim.HELD


async def test_an_event_claim_race_has_one_winner(store: Store) -> None:
    start = now()
    lease = start + timedelta(seconds=60)
    results = await asyncio.gather(
        *(store.claim_event("ev-race", f"r{i}", lease, start) for i in range(RACERS))
    )
    assert results.count(EventClaim.CLAIMED) == 1
    assert results.count(EventClaim.HELD) == RACERS - 1


async def test_get_values_reads_many_keys_at_once_and_leaves_out_the_unset(
    store: Store,
) -> None:
    keys = [f"stop:{n}" for n in range(1, 251)]
    for n in (3, 100, 101, 250):
        assert await store.swap_value(f"stop:{n}", None, f"cancel member-{n}")
    # More keys than one DynamoDB batch takes, and some read twice.
    found = await store.get_values([*keys, "stop:3", "stop:999"])
    assert found == {f"stop:{n}": f"cancel member-{n}" for n in (3, 100, 101, 250)}
    assert await store.get_values([]) == {}
