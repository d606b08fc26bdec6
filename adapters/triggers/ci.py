"""Any CI (Jenkins, CircleCI, CodeBuild) deploys: `POST /webhooks/ci/{name}`.

The body is `{"service", "env", "version"}` (and optionally `"url"`, a link to the build),
signed together with the time it is sent, as Slack signs its requests:
`X-Kajitori-Timestamp: UNIX` and `X-Kajitori-Signature-256: sha256=<HMAC-SHA256(secret,
"v1:" + timestamp + ":" + body)>`, the secret being `KAJITORI_CI_SECRET_{NAME}`. A timestamp
more than 5 minutes from the server's clock is refused, and a signed request runs once: its
digest is remembered past that window, so a captured request replayed (under any delivery
id) is acknowledged and starts nothing.
A CI may deploy only what its `ci: NAME` triggers name; the answer's status tells the pipeline
what happened (202 started or waiting for approval, 403 not this trigger's to deploy, 409
refused by a guardrail), and the result goes to the trigger's channels.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from datetime import timedelta
from typing import Annotated

from aiohttp import web
from pydantic import AfterValidator, BaseModel, ConfigDict, SecretStr

from adapters.triggers.common import (
    HTTP_STATUS,
    IMAGE_TAG,
    TriggerDeploy,
    WebhookHandler,
    already_handled,
    body_digest,
    guarded,
    json_error,
    parse_json_body,
    read_body,
    run_trigger_deploy,
    seen_before,
    warn_unannounced,
)
from bot.clock import Clock
from bot.config import Settings
from bot.kernel import Kernel

log = logging.getLogger(__name__)

PATH = "/webhooks/ci/{name}"
SIGNATURE_HEADER = "X-Kajitori-Signature-256"
TIMESTAMP_HEADER = "X-Kajitori-Timestamp"
# How far a request's timestamp may be from the server's clock, either way.
SIGNATURE_WINDOW = timedelta(minutes=5)
# A signed request is replayable only inside the window: remembering it for longer than the
# window on both sides of its timestamp makes every replay a duplicate.
SIGNED_MEMORY = 3 * SIGNATURE_WINDOW
# Optional: a CI that retries a request sends the same id, and it runs once.
DELIVERY_HEADER = "X-Kajitori-Delivery"
DELIVERY_MEMORY = timedelta(days=7)
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def _name(value: str) -> str:
    if not _NAME.fullmatch(value):
        raise ValueError("not a name (letters, digits, `_ . -`, up to 64)")
    return value


def _image_tag(value: str) -> str:
    if not IMAGE_TAG.fullmatch(value):
        raise ValueError("not an image tag (letters, digits, `_ . -`, up to 128)")
    return value


def _link(value: str) -> str:
    if not re.fullmatch(r"https?://\S{1,2000}", value):
        raise ValueError("not an http(s) URL")
    return value


class CiDeploy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    service: Annotated[str, AfterValidator(_name)]
    env: Annotated[str, AfterValidator(_name)]
    version: Annotated[str, AfterValidator(_image_tag)]
    url: Annotated[str, AfterValidator(_link)] | None = None


def signed_base(timestamp: str, body: bytes) -> bytes:
    """What the signature covers: `v1:` + timestamp + `:` + body."""
    return b"v1:" + timestamp.encode() + b":" + body


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=<hex>` over `signed_base`: what a CI sends in X-Kajitori-Signature-256."""
    digest = hmac.new(secret.encode(), signed_base(timestamp, body), hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def signature_problem(
    secret: SecretStr | None,
    body: bytes,
    timestamp: str,
    signature: str | None,
    clock: Clock,
) -> str | None:
    """Why a request's signature is not accepted, or None when it is."""
    if secret is None:
        return f"signature check failed ({SIGNATURE_HEADER}): no secret is set for this CI"
    if not _TIMESTAMP.fullmatch(timestamp):
        return (
            f"missing or malformed {TIMESTAMP_HEADER} (UNIX seconds): sign "
            f'"v1:" + timestamp + ":" + body and send both headers'
        )
    skew = abs(clock.now().timestamp() - int(timestamp))
    if skew > SIGNATURE_WINDOW.total_seconds():
        return (
            f"{TIMESTAMP_HEADER} {timestamp} is {int(skew)} s from the server's clock, outside the "
            f"{int(SIGNATURE_WINDOW.total_seconds()) // 60}-minute window: sign each request "
            "when it is sent (and check the clocks)"
        )
    expected = sign(secret.get_secret_value(), timestamp, body)
    if not signature or not hmac.compare_digest(expected.encode(), signature.strip().encode()):
        return (
            f"signature check failed ({SIGNATURE_HEADER} must be sha256=HMAC-SHA256 of "
            f'"v1:" + timestamp + ":" + body)'
        )
    return None


def ci_handler(bot: Kernel, settings: Settings) -> WebhookHandler:
    @guarded
    async def ci_webhook(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        body = await read_body(request)
        if isinstance(body, web.Response):
            return body
        secret = settings.ci_secret(name) if _NAME.fullmatch(name) else None
        timestamp = request.headers.get(TIMESTAMP_HEADER, "").strip()
        problem = signature_problem(
            secret, body, timestamp, request.headers.get(SIGNATURE_HEADER), bot.services.clock
        )
        if problem is not None:
            log.warning("ci %s refused: %s", name, problem)
            return json_error(401, problem)
        triggers = [t for t in bot.config.triggers if t.ci == name]
        if not triggers:
            return json_error(404, f"no trigger `ci: {name}` in the config")
        wanted = parse_json_body(body, CiDeploy)
        if isinstance(wanted, web.Response):
            return wanted
        trigger = next(
            (
                t
                for t in triggers
                if (t.deploy.service, t.deploy.env) == (wanted.service, wanted.env)
            ),
            None,
        )
        if trigger is None:
            allowed = [f"{t.deploy.service} {t.deploy.env}" for t in triggers]
            reason = (
                f"ci:{name} may not deploy {wanted.service} to {wanted.env} "
                f"(it may deploy: {', '.join(allowed)})"
            )
            log.warning("ci %s refused: %s", name, reason)
            return json_error(403, reason, allowed=allowed)
        delivery = request.headers.get(DELIVERY_HEADER)
        delivery_key = f"ci:{name}:{delivery}"
        keys = {f"ci:{name}:signed:{body_digest(signed_base(timestamp, body))}": SIGNED_MEMORY}
        if delivery:
            keys[delivery_key] = DELIVERY_MEMORY
        seen = await seen_before(bot, keys)
        if seen:
            why = "same delivery id" if delivery_key in seen else "same signed request"
            log.warning("ci %s request seen before (%s): not run again", name, why)
            return already_handled(delivery, why)
        outcome = await run_trigger_deploy(
            bot,
            TriggerDeploy(trigger, wanted.version, f"ci:{name}", wanted.url),
        )
        return web.json_response(outcome.as_json(), status=HTTP_STATUS[outcome.outcome])

    return ci_webhook


def mount(app: web.Application, bot: Kernel, settings: Settings) -> None:
    warn_unannounced(bot.config, "ci")
    for name in sorted({t.ci for t in bot.config.triggers if t.ci is not None}):
        if settings.ci_secret(name) is None:
            variable = f"KAJITORI_CI_SECRET_{name.upper().replace('-', '_')}"
            log.warning("%s is not set: every request for ci:%s is refused", variable, name)
    app.router.add_post(PATH, ci_handler(bot, settings))
