"""Any CI (Jenkins, CircleCI, CodeBuild) deploys: `POST /webhooks/ci/{name}`.

The body is `{"service", "env", "version"}` (and optionally `"url"`, a link to the build),
signed with `X-Kajitori-Signature-256: sha256=<HMAC-SHA256(KAJITORI_CI_SECRET_{NAME}, body)>`.
A CI may deploy only what its `ci: NAME` triggers name; the answer's status tells the pipeline
what happened (202 started or waiting for approval, 403 not this trigger's to deploy, 409
refused by a guardrail), and the result goes to the trigger's channels.
"""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from typing import Annotated

from aiohttp import web
from pydantic import AfterValidator, BaseModel, ConfigDict

from adapters.triggers.common import (
    HTTP_STATUS,
    IMAGE_TAG,
    TriggerDeploy,
    WebhookHandler,
    guarded,
    json_error,
    parse_json_body,
    read_body,
    run_trigger_deploy,
    signature_matches,
    warn_unannounced,
)
from bot.config import Settings
from bot.kernel import Kernel

log = logging.getLogger(__name__)

PATH = "/webhooks/ci/{name}"
SIGNATURE_HEADER = "X-Kajitori-Signature-256"
# Optional: a CI that retries a request sends the same id, and it runs once.
DELIVERY_HEADER = "X-Kajitori-Delivery"
DELIVERY_MEMORY = timedelta(days=7)
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


def ci_handler(bot: Kernel, settings: Settings) -> WebhookHandler:
    @guarded
    async def ci_webhook(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        body = await read_body(request)
        if isinstance(body, web.Response):
            return body
        secret = settings.ci_secret(name) if _NAME.fullmatch(name) else None
        if not signature_matches(secret, body, request.headers.get(SIGNATURE_HEADER)):
            log.warning("ci %s refused: bad or missing signature (or no secret set)", name)
            return json_error(401, f"signature check failed ({SIGNATURE_HEADER})")
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
        if delivery:
            expires = bot.services.clock.now() + DELIVERY_MEMORY
            if not await bot.services.store.first_seen(f"ci:{name}:{delivery}", expires):
                log.info("ci %s delivery %s seen before: not run again", name, delivery)
                return web.json_response({"delivery": delivery, "duplicate": True})
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
