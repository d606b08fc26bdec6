"""Staying within Slack's rate limits by design, without losing a message.

Slack accepts about one `chat.postMessage` per second per channel (short bursts allowed) and
rate-limits `chat.update` per workspace (Tier 3, about 50 a minute); beyond that it answers
429 with `Retry-After`. A hundred jobs reporting in one channel would meet both at once.

So every post goes through a queue per channel, sent by one worker per channel at most at
the channel's rate, with a small burst:
- a post a person waits for (a refusal, an approval request, a job's final message) goes
  before routine progress, and routine progress uses only the capacity people leave spare:
  it goes out while the channel's burst keeps one post in reserve, so that a stream of
  final messages at the channel's pace is never slowed by progress posts between them
  (progress waiting meanwhile merges, and goes inside its job's final post);
- progress lines for the same thread that wait in the queue are sent as one message, and
  when a post for that thread comes while they still wait (a job's final message), they go
  out inside it: a job that ended needs no separate post for its last lines;
- jobs' final messages that wait together are told in one post in the channel (a hundred
  jobs ending at once would otherwise wait up to a hundred seconds for the last one), and
  each then follows in its own thread as routine progress does, so threads stay whole;
- a 429 makes the worker wait as long as Slack says and try again: nothing is dropped.
Edits of job heads share one workspace-wide budget the same way (`UpdateBudget`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from slack_sdk.errors import SlackApiError

log = logging.getLogger(__name__)

# How long one post keeps being retried through 429s and outages before it is given up.
GIVE_UP_AFTER = 600.0
# When Slack says 429 without a Retry-After.
DEFAULT_RETRY_AFTER = 1.0
# How often a channel's worker looks again while routine progress waits for spare capacity.
SPARE_POLL = 0.1
# Outages other than rate limits: a few tries, growing apart.
ERROR_RETRIES = (0.5, 2.0, 5.0)


class Priority(IntEnum):
    """Lower goes first."""

    PERSON = 0  # a refusal, an approval request, a final message: someone waits for it
    ROUTINE = 1  # progress


def retry_after(error: BaseException) -> float | None:
    """Seconds Slack asks to wait, when `error` is a 429; None for any other error."""
    if not isinstance(error, SlackApiError):
        return None
    response = error.response
    if getattr(response, "status_code", None) != 429:
        return None
    headers = getattr(response, "headers", {}) or {}
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    try:
        return max(float(value), 0.0) if value is not None else DEFAULT_RETRY_AFTER
    except (TypeError, ValueError):
        return DEFAULT_RETRY_AFTER


class TokenBucket:
    """`rate` sends per second on average, up to `burst` at once."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._at = time.monotonic()
        self._paused_until = 0.0

    def _refill(self) -> None:
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now

    async def take(self) -> None:
        while True:
            self._refill()
            wait = self._paused_until - time.monotonic()
            if wait <= 0 and self._tokens >= 1:
                self._tokens -= 1
                return
            if wait <= 0:
                wait = (1 - self._tokens) / self.rate
            await asyncio.sleep(wait)

    def spare_in(self, reserve: int) -> float:
        """Seconds until a send leaves at least `reserve` sends of the burst; 0 if now."""
        self._refill()
        paused = self._paused_until - time.monotonic()
        short = (reserve + 1) - self._tokens
        return max(paused, short / self.rate if short > 0 else 0.0, 0.0)

    def pause(self, seconds: float) -> None:
        """Slack said 429: nothing goes out for `seconds`, and the burst starts empty."""
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)
        self._tokens = 0.0


Send = Callable[[], Awaitable[Any]]
Merge = Callable[[list[str]], Send]
# A post that can carry the progress lines still waiting in its thread: what to send
# instead, or None when they do not fit in it.
Fold = Callable[[list[str]], Send | None]


@dataclass(frozen=True)
class Ending:
    """A job's final message, as a piece of one post that tells several jobs' endings."""

    piece: Any
    # The post telling the first n of the pieces given, in order (n >= 1), and n.
    combine: Callable[[list[Any]], tuple[Send, int]]


@dataclass(order=True)
class _Post:
    priority: int
    seq: int
    # What a caller awaits; routine progress has none (nobody waits for it to go out).
    done: asyncio.Future[Any] | None = field(default=None, compare=False)
    send: Send | None = field(default=None, compare=False)
    # Routine progress: its lines, joined into one message by `merge` when it is sent.
    lines: list[str] = field(default_factory=list, compare=False)
    merge: Merge | None = field(default=None, compare=False)
    # Progress of the same thread that must go first (a thread keeps its order), and
    # whether this post went out with a later one instead.
    before: _Post | None = field(default=None, compare=False)
    absorbed: bool = field(default=False, compare=False)
    ending: Ending | None = field(default=None, compare=False)

    def sender(self) -> Send:
        if self.send is not None:
            return self.send
        assert self.merge is not None
        return self.merge(list(self.lines))


async def send_with_retries(
    send: Send, bucket: TokenBucket, what: str, on_limited: Callable[[], None] = lambda: None
) -> Any:
    """Send once the bucket allows; through 429s (waiting as told) and a few outages."""
    deadline = time.monotonic() + GIVE_UP_AFTER
    errors = iter(ERROR_RETRIES)
    while True:
        await bucket.take()
        try:
            return await send()
        except asyncio.CancelledError:
            raise
        except Exception as error:
            wait = retry_after(error)
            if wait is not None:
                bucket.pause(wait)
                on_limited()
                log.info("Slack rate-limited %s: waiting %.1fs", what, wait)
            else:
                wait = next(errors, None)
                if wait is None or _not_worth_retrying(error):
                    raise
                log.warning("%s failed (%s); trying again in %.1fs", what, error, wait)
                await asyncio.sleep(wait)
            if time.monotonic() + wait > deadline:
                raise


def _not_worth_retrying(error: BaseException) -> bool:
    """Slack's answers that another try cannot change (bad channel, no permission…)."""
    return isinstance(error, SlackApiError) and getattr(error.response, "status_code", 0) < 500


class ChannelPacer:
    """The queues and workers of every channel the bot posts in."""

    def __init__(self, rate: float = 1.0, burst: int = 3) -> None:
        self._rate = rate
        self._burst = burst
        self._queues: dict[str, asyncio.PriorityQueue[_Post]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        # Routine progress still waiting in a channel's queue, by (channel, thread).
        self._progress: dict[tuple[str, str], _Post] = {}
        # Jobs' final messages waiting in a channel's queue, in order.
        self._endings: dict[str, list[_Post]] = {}
        self._seq = itertools.count()
        self.rate_limited = 0  # 429s met, for the metrics and the benchmark
        self.folded = 0  # waiting progress posts that went out inside a later post
        self.told_together = 0  # final messages told in a post with others

    async def post(
        self,
        channel: str,
        send: Send,
        *,
        priority: Priority,
        thread: str | None = None,
        fold: Fold | None = None,
        ending: Ending | None = None,
    ) -> Any:
        """Send through `channel`'s queue; returns what `send` returned (or raises its error).
        Progress still waiting in `thread` goes out inside this post when `fold` can carry
        it, else first, whatever the priority. A job's final message (`ending`) that waits
        with others goes out with them in one post outside their threads, which returns what
        that post returned; `send` then follows as routine progress."""
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        post = _Post(priority, next(self._seq), done, send=send, ending=ending)
        if ending is not None:
            self._endings.setdefault(channel, []).append(post)
        if thread is not None:
            waiting = self._progress.pop((channel, thread), None)
            if waiting is not None:
                waiting.absorbed = True
                folded = fold(list(waiting.lines)) if fold is not None else None
                if folded is not None:
                    post.send = folded
                    self.folded += 1
                else:
                    post.before = waiting
        self._queue(channel).put_nowait(post)
        return await done

    def progress(self, channel: str, thread: str, line: str, merge: Merge) -> None:
        """Queue a routine progress line in `thread`, to be sent with the lines still waiting
        there. It returns at once: a job never waits for Slack's pace."""
        waiting = self._progress.get((channel, thread))
        if waiting is not None:
            waiting.lines.append(line)
            return
        waiting = _Post(Priority.ROUTINE, next(self._seq), lines=[line], merge=merge)
        self._progress[(channel, thread)] = waiting
        self._queue(channel).put_nowait(waiting)

    def _queue(self, channel: str) -> asyncio.PriorityQueue[_Post]:
        queue = self._queues.get(channel)
        if queue is None:
            queue = self._queues[channel] = asyncio.PriorityQueue()
            bucket = TokenBucket(self._rate, self._burst)
            self._workers[channel] = asyncio.create_task(
                self._work(channel, queue, bucket), name=f"slack-pacer-{channel}"
            )
        return queue

    def _limited(self) -> None:
        self.rate_limited += 1

    async def _work(
        self, channel: str, queue: asyncio.PriorityQueue[_Post], bucket: TokenBucket
    ) -> None:
        # Routine progress leaves one post of the burst to people (none when there is no burst).
        reserve = min(1, self._burst - 1)
        while True:
            post = await queue.get()
            try:
                if post.absorbed:
                    continue
                if post.priority == Priority.ROUTINE and bucket.spare_in(reserve) > 0:
                    # Back in the queue, behind anything a person waits for that comes meanwhile.
                    queue.put_nowait(post)
                    await asyncio.sleep(min(bucket.spare_in(reserve), SPARE_POLL))
                    continue
                if post.ending is not None and await self._together(channel, post, bucket):
                    continue
                for key, waiting in list(self._progress.items()):
                    if waiting is post:
                        # Lines from now on start a new message.
                        del self._progress[key]
                for each in (post.before, post):
                    if each is not None:
                        await self._deliver(each.sender(), [each], bucket, f"a post in {channel}")
            finally:
                queue.task_done()

    async def _together(self, channel: str, post: _Post, bucket: TokenBucket) -> bool:
        """Tell `post`'s ending with the others waiting in `channel`, in one post; False when
        it waits alone (it goes to its thread as usual)."""
        waiting = self._endings[channel]
        waiting.remove(post)
        if not waiting:
            return False
        assert post.ending is not None
        candidates = [post, *waiting]
        send, n = post.ending.combine([p.ending.piece for p in candidates if p.ending])
        told = candidates[: max(n, 1)]
        for each in told[1:]:
            waiting.remove(each)
            each.absorbed = True  # skipped when its turn in the queue comes
        if not await self._deliver(send, told, bucket, f"final messages in {channel}"):
            return True
        self.told_together += len(told)
        for each in told:
            # Its thread still gets it (with the lines that waited there), as progress does.
            self._queues[channel].put_nowait(
                _Post(Priority.ROUTINE, next(self._seq), send=each.send, before=each.before)
            )
        return True

    async def _deliver(
        self, send: Send, posts: list[_Post], bucket: TokenBucket, what: str
    ) -> bool:
        """Send one post for `posts` (a post, or several jobs' endings told at once) and
        settle what their callers await; True when it went."""
        try:
            result = await send_with_retries(send, bucket, what, self._limited)
        except asyncio.CancelledError:
            for post in posts:
                if post.done is not None:
                    post.done.cancel()
            raise
        except Exception as error:
            for post in posts:
                if post.done is None:
                    log.exception("%s could not be sent", what)
                elif not post.done.done():
                    post.done.set_exception(error)
            return False
        for post in posts:
            if post.done is not None and not post.done.done():
                post.done.set_result(result)
        return True

    async def close(self, grace: float = 10.0) -> None:
        """Send what is queued (a final message must not be lost), then stop."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                for queue in list(self._queues.values()):
                    await queue.join()
        for worker in self._workers.values():
            worker.cancel()
        for worker in self._workers.values():
            with contextlib.suppress(asyncio.CancelledError):
                await worker


class UpdateBudget:
    """One workspace-wide budget for `chat.update` (Tier 3: about 50 a minute)."""

    def __init__(self, per_minute: float = 50.0, burst: int = 10) -> None:
        self._bucket = TokenBucket(per_minute / 60.0, burst)
        self.rate_limited = 0

    async def update(self, send: Send) -> Any:
        return await send_with_retries(send, self._bucket, "chat.update", self._limited)

    def _limited(self) -> None:
        self.rate_limited += 1
