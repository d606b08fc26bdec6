"""Acknowledgements first: how the work behind Slack's requests is admitted."""

from __future__ import annotations

import asyncio
import contextlib

from adapters.chat.slack.admission import Admission


async def _enter(admission: Admission, entered: list[int], n: int, release: asyncio.Event) -> None:
    async with admission.slot():
        entered.append(n)
        await release.wait()


async def _settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_at_most_limit_run_at_once_in_arrival_order() -> None:
    admission = Admission(limit=2, hold=3600)
    entered: list[int] = []
    release = asyncio.Event()
    tasks = [asyncio.create_task(_enter(admission, entered, n, release)) for n in range(5)]
    await _settle()
    assert entered == [0, 1]
    release.set()
    await asyncio.gather(*tasks)
    assert entered == [0, 1, 2, 3, 4]


async def test_new_work_waits_while_a_request_awaits_its_acknowledgement() -> None:
    admission = Admission(limit=8, patience=3600)
    entered: list[int] = []
    release = asyncio.Event()
    release.set()
    with admission.acknowledging():
        task = asyncio.create_task(_enter(admission, entered, 1, release))
        await _settle()
        assert entered == []
    await asyncio.wait_for(task, 5)
    assert entered == [1]


async def test_work_held_back_by_acknowledgements_starts_once_its_patience_runs_out() -> None:
    admission = Admission(limit=8, patience=0.05)
    entered: list[int] = []
    release = asyncio.Event()
    release.set()
    with admission.acknowledging():
        await asyncio.wait_for(_enter(admission, entered, 1, release), 5)
    assert entered == [1]


async def test_slow_work_gives_its_slot_back_after_hold() -> None:
    admission = Admission(limit=1, hold=0.05)
    entered: list[int] = []
    slow, quick = asyncio.Event(), asyncio.Event()
    quick.set()
    first = asyncio.create_task(_enter(admission, entered, 1, slow))
    await asyncio.wait_for(_enter(admission, entered, 2, quick), 5)
    assert entered == [1, 2] and not first.done()
    slow.set()
    await first


async def test_cancelled_waiter_leaves_no_slot_taken() -> None:
    admission = Admission(limit=1, hold=3600)
    entered: list[int] = []
    release = asyncio.Event()
    holder = asyncio.create_task(_enter(admission, entered, 1, release))
    waiter = asyncio.create_task(_enter(admission, entered, 2, release))
    await _settle()
    waiter.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await waiter
    release.set()
    await holder
    await asyncio.wait_for(_enter(admission, entered, 3, release), 5)
    assert entered == [1, 3]


async def test_no_room_once_backlog_pieces_of_work_wait_or_run() -> None:
    admission = Admission(limit=1, hold=3600, backlog=3)
    entered: list[int] = []
    release = asyncio.Event()
    tasks = [asyncio.create_task(_enter(admission, entered, n, release)) for n in range(3)]
    await _settle()
    # One runs, two wait: the backlog is full, whatever runs or waits.
    assert entered == [0] and admission.pending == 3
    assert not admission.has_room()
    release.set()
    await asyncio.gather(*tasks)
    assert entered == [0, 1, 2]
    assert admission.pending == 0 and admission.has_room()


async def test_a_cancelled_waiter_frees_its_place_in_the_backlog() -> None:
    admission = Admission(limit=1, hold=3600, backlog=2)
    entered: list[int] = []
    release = asyncio.Event()
    holder = asyncio.create_task(_enter(admission, entered, 1, release))
    waiter = asyncio.create_task(_enter(admission, entered, 2, release))
    await _settle()
    assert not admission.has_room()
    waiter.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await waiter
    assert admission.has_room()
    release.set()
    await holder


async def test_no_room_once_the_oldest_waiting_work_has_waited_max_wait() -> None:
    admission = Admission(limit=1, hold=3600, max_wait=0.05)
    entered: list[int] = []
    release = asyncio.Event()
    tasks = [asyncio.create_task(_enter(admission, entered, n, release)) for n in range(2)]
    await _settle()
    # A burst just taken on: the one waiting has not waited long yet.
    assert entered == [0] and admission.has_room()
    await asyncio.sleep(0.1)
    assert not admission.has_room()
    release.set()
    await asyncio.gather(*tasks)
    assert admission.has_room()


async def test_no_room_once_the_work_waiting_would_take_max_wait_to_start_at_its_pace() -> None:
    # Work starts 20 a second (each gives its slot back after 0.05 s); a new piece may wait
    # up to 2 s.
    admission = Admission(limit=1, hold=0.05, max_wait=2.0)
    entered: list[int] = []
    release = asyncio.Event()
    tasks = [asyncio.create_task(_enter(admission, entered, n, release)) for n in range(100)]
    await _settle()
    # A burst from idle is taken on while no pace is known yet.
    assert admission.has_room()
    await asyncio.sleep(1.2)
    # About 24 started and 76 wait: at 20 a second the last of them starts in nearly 4 s,
    # though none has waited 2 s yet.
    assert 10 < len(entered) < 60
    assert not admission.has_room()
    release.set()
    await asyncio.gather(*tasks)
    assert admission.has_room()
