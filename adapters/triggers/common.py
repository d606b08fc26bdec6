"""What the GitHub and CI triggers share.

A trigger acts as its own member (`github:acme/api`, `ci:jenkins`) through the same dispatcher
as a person, so every guardrail applies: its roles, the lock, approval on a protected
environment. It announces the deploy in its channels; the threads of that announcement travel
in the trigger's origin, so the job's progress and result, and a deploy approved later by a
human, land under it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, SecretStr, ValidationError

from adapters.triggers.channels import announce_in, trigger_origin
from bot.config import Config, Trigger
from bot.dispatcher import Result
from bot.kernel import Kernel
from bot.messages import Message, Tone
from bot.model import Outcome

log = logging.getLogger(__name__)

# Who approved a deploy that a trigger's config lets through on a protected environment.
CONFIG_APPROVAL = "trigger config"

# ECR's rule for image tags; anything else could smuggle words into the command text.
IMAGE_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")

ModelT = TypeVar("ModelT", bound=BaseModel)


def signature_matches(secret: SecretStr | None, body: bytes, header: str | None) -> bool:
    """`sha256=<hex HMAC-SHA256(secret, body)>`, compared in constant time."""
    if secret is None or not header:
        return False
    expected = (
        "sha256=" + hmac.new(secret.get_secret_value().encode(), body, hashlib.sha256).hexdigest()
    )
    return hmac.compare_digest(expected.encode(), header.strip().encode())


def body_digest(*parts: bytes) -> str:
    """SHA-256 of what was signed: a replayed body has the same digest whatever its headers."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part)
    return digest.hexdigest()


async def seen_before(bot: Kernel, keys: dict[str, timedelta]) -> list[str]:
    """Remember every key (each for its own time); return those seen already. A request runs
    only when none was: a replay under a fresh delivery id still matches its body's digest."""
    services = bot.services
    now = services.clock.now()
    return [
        key
        for key, memory in keys.items()
        if not await services.store.first_seen(key, now + memory)
    ]


def already_handled(delivery: str | None, why: str) -> web.Response:
    """The answer to a replay or a retry: acknowledged (so nobody retries it), nothing run."""
    answer: dict[str, Any] = {"duplicate": True, "message": f"already handled ({why})"}
    if delivery:
        answer = {"delivery": delivery, **answer}
    return web.json_response(answer)


def json_error(status: int, error: str, **details: Any) -> web.Response:
    return web.json_response({"error": error, **details}, status=status)


async def read_body(request: web.Request) -> bytes | web.Response:
    """The raw body (signatures cover its exact bytes), or a JSON error for one too large."""
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge as error:
        return json_error(413, f"body too large: {error.text}")


def validation_problem(error: ValidationError) -> str:
    """The first problem of a request body, with its key path: `release.tag_name: Field required`."""
    first = error.errors()[0]
    path = ".".join(str(part) for part in first["loc"]) or "(body)"
    message = str(first["msg"]).removeprefix("Value error, ")
    return f"{path}: {message}"


TOO_DEEP = "the body is not JSON this server reads: nested too deep"


def parse_json_body(body: bytes, model: type[ModelT]) -> ModelT | web.Response:
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        return json_error(400, f"the body is not JSON: {error}")
    except RecursionError:
        return json_error(400, TOO_DEEP)
    if not isinstance(data, dict):
        return json_error(400, "the body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as error:
        return json_error(400, validation_problem(error))


WebhookHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def guarded(handler: WebhookHandler) -> WebhookHandler:
    """A webhook answers JSON whatever happens: a bug becomes a logged 500 with an id."""

    async def answer(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException:
            raise
        except RecursionError:
            # Only a body nested past any real payload gets here: the sender's error.
            log.warning("%s refused: a body nested too deep", request.path)
            return json_error(400, TOO_DEEP)
        except Exception:
            error_id = secrets.token_hex(4)
            log.exception("internal error %s on %s", error_id, request.path)
            return json_error(500, f"internal error {error_id} (details are in the logs)")

    return answer


def warn_unannounced(config: Config, name: str) -> None:
    """Say at start which `name` triggers (`github`, `ci`) announce their deploys nowhere."""
    for trigger in config.triggers:
        if trigger.member.startswith(f"{name}:") and not trigger.channels:
            log.warning(
                "trigger %s has no channels: its deploys are announced nowhere", trigger.member
            )


@dataclass(frozen=True)
class TriggerDeploy:
    """A deploy a trigger asks for, and what to say about where it came from."""

    trigger: Trigger
    version: str
    headline: str  # "acme/api: release v2 published"
    link: str | None = None  # the commit, release or CI build

    @property
    def command(self) -> str:
        target = self.trigger.deploy
        return f"deploy {target.service} {target.env} {self.version}"


@dataclass(frozen=True)
class TriggerOutcome:
    member: str
    command: str
    outcome: Outcome
    message: str
    job: int | None = None
    request: int | None = None

    def as_json(self) -> dict[str, Any]:
        answer: dict[str, Any] = {
            "trigger": self.member,
            "command": self.command,
            "outcome": self.outcome.value,
            "message": self.message,
        }
        if self.job is not None:
            answer["job"] = self.job
        if self.request is not None:
            answer["request"] = self.request
        return answer


async def run_trigger_deploy(bot: Kernel, deploy: TriggerDeploy) -> TriggerOutcome:
    """Announce the deploy in the trigger's channels, then run it as the trigger's member."""
    trigger = deploy.trigger
    target = trigger.deploy
    notifier = bot.services.chat
    head = f"{deploy.headline}: deploy {target.service} to {target.env} at {deploy.version}"
    if deploy.link:
        head = f"{head}\n{deploy.link}"
    threads = await announce_in(notifier, trigger.channels, Message(text=head, tone=Tone.INFO))
    origin = trigger_origin(trigger.member, threads)
    approved_by = CONFIG_APPROVAL if trigger.approved else None
    result = await bot.dispatcher.handle(origin, deploy.command, approved_by=approved_by)
    # A started job announces itself in the threads; anything else is said here.
    if result.outcome is not Outcome.STARTED:
        for message in result.messages:
            await notifier.reply(origin, message)
    outcome = _outcome(bot, trigger, deploy.command, result)
    log.info(
        "%s: `%s` -> %s%s",
        trigger.member,
        deploy.command,
        outcome.outcome.value,
        f" (job {outcome.job})" if outcome.job is not None else "",
    )
    return outcome


def _outcome(bot: Kernel, trigger: Trigger, command: str, result: Result) -> TriggerOutcome:
    return TriggerOutcome(
        member=trigger.member,
        command=command,
        outcome=result.outcome,
        message=bot.services.redactor.text(result.text),
        job=result.job.id if result.job is not None else None,
        request=result.request.id if result.request is not None else None,
    )


# How a CI caller learns what happened: a pipeline fails on anything but 2xx.
HTTP_STATUS = {
    Outcome.OK: 200,
    Outcome.STARTED: 202,
    Outcome.PENDING: 202,
    Outcome.REFUSED: 409,
    Outcome.USAGE: 400,
    Outcome.FAILED: 502,
    Outcome.ERROR: 500,
}
