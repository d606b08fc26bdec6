"""DescribeServices shared by everything that reads services of one cluster at once.

Each running deploy watches its service by reading it every few seconds: with a hundred
deploys, that is some twenty DescribeServices a second, each for one service, where ECS
takes up to ten services a call and throttles the calls of an account. Reads of one cluster
(in one account and region) go through a `ServiceReads`: a read asked while none is under
way goes at once, alone; reads asked while one is under way wait for it to end, then go
together, up to ten services a call. So an idle bot reads as before, and a busy one makes
fewer calls the busier it is. A read never gets an answer older than itself: whatever is
asked during a call waits for the next one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

# DescribeServices takes up to ten services a call.
SERVICES_PER_CALL = 10

ServiceAnswer = tuple[dict[str, Any] | None, str]
"""The service as DescribeServices describes it (None when not found), and why it was not
found (ECS's failure reason, "MISSING" when it gives none)."""


class ServiceReads:
    def __init__(self, describe: Callable[[list[str]], Awaitable[dict[str, Any]]]) -> None:
        """`describe(services)`: one DescribeServices call of this cluster."""
        self._describe = describe
        # What is asked and not yet sent, by service name or ARN, in the order asked.
        self._asked: dict[str, list[asyncio.Future[ServiceAnswer]]] = {}
        self._sending: asyncio.Task[None] | None = None

    async def read(self, service: str) -> ServiceAnswer:
        answer: asyncio.Future[ServiceAnswer] = asyncio.get_running_loop().create_future()
        self._asked.setdefault(service, []).append(answer)
        if self._sending is None:
            # A task of its own: a reader cancelled (its job stopped) cancels no one's call.
            self._sending = asyncio.create_task(self._send())
        return await answer

    async def _send(self) -> None:
        try:
            while self._asked:
                names = list(self._asked)[:SERVICES_PER_CALL]
                waiting = {name: self._asked.pop(name) for name in names}
                try:
                    response = await self._describe(names)
                except Exception as error:
                    _settle(waiting, error=error)
                    continue
                except BaseException as error:  # cancelled with the bot: nobody waits on
                    _settle(waiting, error=error)
                    raise
                _settle(waiting, answers=_answers(names, response))
        finally:
            self._sending = None
            left, self._asked = self._asked, {}
            _settle(left)


def _answers(names: list[str], response: dict[str, Any]) -> dict[str, ServiceAnswer]:
    found: dict[str, dict[str, Any]] = {}
    for service in response.get("services", []):
        for key in (service.get("serviceName"), service.get("serviceArn")):
            if key:
                found[key] = service
    reasons = {
        str(failure.get("arn", "")): str(failure.get("reason") or "MISSING")
        for failure in response.get("failures", [])
    }
    answers: dict[str, ServiceAnswer] = {}
    for name in names:
        reason = next(
            (why for arn, why in reasons.items() if arn == name or arn.endswith(f"/{name}")),
            "MISSING",
        )
        answers[name] = (found.get(name), reason)
    return answers


def _settle(
    waiting: dict[str, list[asyncio.Future[ServiceAnswer]]],
    *,
    answers: dict[str, ServiceAnswer] | None = None,
    error: BaseException | None = None,
) -> None:
    """Answer every reader still waiting: with its service, with the call's error, or, when
    the reads stop (the bot closing), by cancelling its wait."""
    for name, futures in waiting.items():
        for future in futures:
            if future.done():  # its reader was cancelled
                continue
            if answers is not None:
                future.set_result(answers[name])
            elif error is None or isinstance(error, asyncio.CancelledError):
                future.cancel()
            else:
                future.set_exception(error)
