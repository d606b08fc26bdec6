"""GitHub deliveries that deploy: `POST /webhooks/github`.

Checked in this order, so that nothing runs for a request that fails a check: the signature
(`X-Hub-Signature-256`, constant time), the event (`ping` is answered, anything but `push`
and `release` ignored), the payload, the config's triggers, and only then whether it was
seen before. GitHub signs no timestamp, so a captured delivery stays validly signed forever;
what makes it run once is remembering both its delivery id and a digest of its body for as
long as GitHub redelivers: a redelivery, or the same body replayed under a fresh delivery
id, is acknowledged and starts nothing.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import timedelta
from fnmatch import fnmatchcase

from aiohttp import web
from pydantic import BaseModel

from adapters.triggers.common import (
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
    signature_matches,
    warn_unannounced,
)
from bot.config import Config, GithubTrigger, Settings, Trigger
from bot.kernel import Kernel

log = logging.getLogger(__name__)

PATH = "/webhooks/github"
# GitHub lets a delivery be redelivered by hand for days (its "Recent deliveries" keep 3):
# remember ids and bodies for a week.
DELIVERY_MEMORY = timedelta(days=7)
_SHA = re.compile(r"[0-9a-f]{40}")


class Repository(BaseModel):
    full_name: str
    default_branch: str | None = None


class Commit(BaseModel):
    id: str
    url: str | None = None


class PushEvent(BaseModel):
    ref: str
    after: str
    deleted: bool = False
    compare: str | None = None
    head_commit: Commit | None = None
    repository: Repository


class Release(BaseModel):
    tag_name: str
    html_url: str | None = None
    target_commitish: str | None = None


class ReleaseEvent(BaseModel):
    action: str
    release: Release
    repository: Repository


@dataclass
class Matches:
    deploys: list[TriggerDeploy] = field(default_factory=list)
    # Why a delivery (or a trigger it matched) deploys nothing: said in the answer and the log.
    skipped: list[str] = field(default_factory=list)


def _github_triggers(config: Config, repo: str, on: str) -> list[tuple[Trigger, GithubTrigger]]:
    return [
        (t, t.github)
        for t in config.triggers
        if t.github is not None and t.github.on == on and t.github.repo.lower() == repo.lower()
    ]


def _add(matches: Matches, trigger: Trigger, version: str, headline: str, link: str | None) -> None:
    if not IMAGE_TAG.fullmatch(version):
        matches.skipped.append(f"{trigger.member}: {version!r} is not a valid image tag")
        return
    matches.deploys.append(TriggerDeploy(trigger, version, headline, link))


def match_push(config: Config, event: PushEvent) -> Matches:
    matches = Matches()
    repo = event.repository.full_name
    kind, _, name = event.ref.removeprefix("refs/").partition("/")
    if kind not in ("heads", "tags") or not name:
        matches.skipped.append(f"{event.ref} is neither a branch nor a tag")
        return matches
    if event.deleted:
        matches.skipped.append(f"the push deleted {event.ref}")
        return matches
    link = event.head_commit.url if event.head_commit and event.head_commit.url else event.compare
    for trigger, github in _github_triggers(config, repo, "push"):
        if kind == "heads":
            # A push trigger naming neither a branch nor a tag follows the default branch.
            pattern = github.branch or (None if github.tag else event.repository.default_branch)
            if pattern is None or not fnmatchcase(name, pattern):
                continue
            if github.version == "tag":
                matches.skipped.append(
                    f"{trigger.member}: a push to branch {name} has no tag to deploy "
                    "(set `version: sha` on the trigger)"
                )
                continue
            headline = f"{repo}: push to {name} ({event.after[:7]})"
        else:
            if github.tag is None or not fnmatchcase(name, github.tag):
                continue
            headline = f"{repo}: tag {name} pushed"
        version = event.after if github.version == "sha" else name
        _add(matches, trigger, version, headline, link)
    if not matches.deploys and not matches.skipped:
        matches.skipped.append(f"no push trigger matches {repo} {event.ref}")
    return matches


def match_release(config: Config, event: ReleaseEvent) -> Matches:
    matches = Matches()
    repo = event.repository.full_name
    tag = event.release.tag_name
    if event.action != "published":
        matches.skipped.append(f"release {event.action} (only `published` deploys)")
        return matches
    for trigger, github in _github_triggers(config, repo, "release"):
        if github.tag is not None and not fnmatchcase(tag, github.tag):
            continue
        version = tag
        if github.version == "sha":
            commitish = event.release.target_commitish or ""
            if not _SHA.fullmatch(commitish):
                matches.skipped.append(
                    f"{trigger.member}: release {tag} targets {commitish or 'no commit'}, "
                    "not a commit sha (set `version: tag` on the trigger)"
                )
                continue
            version = commitish
        _add(matches, trigger, version, f"{repo}: release {tag} published", event.release.html_url)
    if not matches.deploys and not matches.skipped:
        matches.skipped.append(f"no release trigger matches {repo} tag {tag}")
    return matches


def _match(config: Config, event: str, body: bytes) -> Matches | web.Response:
    if event == "push":
        push = parse_json_body(body, PushEvent)
        return push if isinstance(push, web.Response) else match_push(config, push)
    release = parse_json_body(body, ReleaseEvent)
    return release if isinstance(release, web.Response) else match_release(config, release)


def github_handler(bot: Kernel, settings: Settings) -> WebhookHandler:
    secret = settings.github_webhook_secret

    @guarded
    async def github_webhook(request: web.Request) -> web.StreamResponse:
        body = await read_body(request)
        if isinstance(body, web.Response):
            return body
        delivery = request.headers.get("X-GitHub-Delivery", "")
        if not signature_matches(secret, body, request.headers.get("X-Hub-Signature-256")):
            log.warning("github delivery %s refused: bad or missing signature", delivery or "?")
            return json_error(401, "signature check failed (X-Hub-Signature-256)")
        event = request.headers.get("X-GitHub-Event", "")
        if not event:
            return json_error(400, "missing header X-GitHub-Event")
        if event == "ping":
            return web.json_response({"ok": True, "event": "ping"})
        if not delivery:
            return json_error(400, "missing header X-GitHub-Delivery")
        if request.content_type == "application/x-www-form-urlencoded":
            return json_error(415, "set the webhook's content type to application/json")
        if event not in ("push", "release"):
            log.info("github delivery %s ignored: event %s triggers nothing", delivery, event)
            return web.json_response(
                {"delivery": delivery, "ignored": [f"event {event} triggers nothing"]}, status=202
            )
        matches = _match(bot.config, event, body)
        if isinstance(matches, web.Response):
            return matches
        for reason in matches.skipped:
            log.info("github delivery %s ignored: %s", delivery, reason)
        if not matches.deploys:
            return web.json_response({"delivery": delivery, "ignored": matches.skipped}, status=202)
        delivery_key = f"github:{delivery}"
        seen = await seen_before(
            bot,
            {delivery_key: DELIVERY_MEMORY, f"github:body:{body_digest(body)}": DELIVERY_MEMORY},
        )
        if seen:
            why = "same delivery id" if delivery_key in seen else "same body, another delivery id"
            log.warning("github delivery %s seen before (%s): not run again", delivery, why)
            return already_handled(delivery, why)
        outcomes = [await run_trigger_deploy(bot, deploy) for deploy in matches.deploys]
        return web.json_response(
            {
                "delivery": delivery,
                "deploys": [o.as_json() for o in outcomes],
                "ignored": matches.skipped,
            },
            status=202,
        )

    return github_webhook


def mount(app: web.Application, bot: Kernel, settings: Settings) -> None:
    warn_unannounced(bot.config, "github")
    if settings.github_webhook_secret is None:
        log.warning("GITHUB_WEBHOOK_SECRET is not set: %s refuses every delivery", PATH)
    app.router.add_post(PATH, github_handler(bot, settings))
