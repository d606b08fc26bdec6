"""`POST /webhooks/sns`: AWS events and alarms delivered by an SNS HTTPS subscription.

Every message is checked before anything is done with it: the topic must be one the config
names, the signature version 2 (SHA256withRSA), the signing certificate's URL an HTTPS URL
on `sns.<region>.amazonaws.com`, and the signature must verify against that certificate
over the fields SNS signs. A certificate is fetched once per URL, unless the config
(`events.sns.certificates`) gives its PEM file for that URL. A subscription confirmation
is answered by visiting its SubscribeURL (on the same hosts). A request that fails a check
gets 401 (400 when it is not an SNS message at all) and changes nothing.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from adapters.triggers.common import guarded, json_error, read_body
from bot.config import SnsIntake
from bot.ports.events import EventSink

log = logging.getLogger(__name__)

PATH = "/webhooks/sns"
_SNS_HOST = re.compile(r"sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?")
_SIGNED = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
    "UnsubscribeConfirmation": (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
}
_OPTIONAL = {"Subject"}


class NotVerified(Exception):
    """The message is not a genuine SNS message for this bot (the text says why)."""


def is_sns_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme == "https" and bool(_SNS_HOST.fullmatch(parts.hostname or ""))


def string_to_sign(message: dict[str, Any]) -> bytes:
    kind = str(message.get("Type", ""))
    lines: list[str] = []
    for name in _SIGNED[kind]:
        if name not in message:
            if name in _OPTIONAL:
                continue
            raise NotVerified(f"{kind} without {name}")
        lines.extend([name, str(message[name])])
    return ("\n".join(lines) + "\n").encode()


class SnsVerifier:
    def __init__(self, config: SnsIntake, session: aiohttp.ClientSession | None = None) -> None:
        self._config = config
        self._session = session
        self._certificates: dict[str, x509.Certificate] = {}
        self._lock = asyncio.Lock()

    async def certificate(self, url: str) -> x509.Certificate:
        if not is_sns_url(url) or not urlsplit(url).path.endswith(".pem"):
            raise NotVerified(
                f"SigningCertURL {url!r} is not a certificate on sns.<region>.amazonaws.com"
            )
        cached = self._certificates.get(url)
        if cached is not None:
            return cached
        async with self._lock:
            if url in self._certificates:
                return self._certificates[url]
            known = self._config.certificates.get(url)
            if known is not None:
                pem = await asyncio.to_thread(Path(known).read_bytes)
            else:
                pem = await self._fetch(url)
            try:
                certificate = x509.load_pem_x509_certificate(pem)
            except ValueError:
                raise NotVerified(f"{url} is not a PEM certificate") from None
            self._certificates[url] = certificate
            return certificate

    async def _fetch(self, url: str) -> bytes:
        if self._session is None:
            raise NotVerified("no HTTP session to fetch the signing certificate")
        try:
            async with self._session.get(
                url, timeout=aiohttp.ClientTimeout(total=10), allow_redirects=False
            ) as response:
                if response.status != 200:
                    raise NotVerified(f"fetching {url} answered {response.status}")
                return await response.read()
        except aiohttp.ClientError as error:
            raise NotVerified(f"fetching {url} failed: {type(error).__name__}") from None

    async def verify(self, message: dict[str, Any]) -> None:
        kind = message.get("Type")
        if kind not in _SIGNED:
            raise NotVerified(f"unknown SNS message type {kind!r}")
        if message.get("TopicArn") not in self._config.topics:
            raise NotVerified(f"topic {message.get('TopicArn')!r} is not in events.sns.topics")
        if str(message.get("SignatureVersion")) != "2":
            raise NotVerified("only SignatureVersion 2 (SHA256withRSA) is accepted")
        try:
            signature = base64.b64decode(str(message.get("Signature", "")), validate=True)
        except (binascii.Error, ValueError):
            raise NotVerified("the Signature is not base64") from None
        if not signature:
            raise NotVerified("the message is not signed")
        certificate = await self.certificate(str(message.get("SigningCertURL", "")))
        key = certificate.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise NotVerified("the signing certificate has no RSA key")
        try:
            key.verify(signature, string_to_sign(message), padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            raise NotVerified("the signature does not match") from None


def sns_handler(
    sink: EventSink, verifier: SnsVerifier, session: aiohttp.ClientSession | None
) -> Any:
    @guarded
    async def sns_webhook(request: web.Request) -> web.StreamResponse:
        body = await read_body(request)
        if isinstance(body, web.Response):
            return body
        try:
            message = json.loads(body)
        except ValueError:
            return json_error(400, "the body is not JSON")
        if not isinstance(message, dict) or "Type" not in message:
            return json_error(400, "the body is not an SNS message")
        try:
            await verifier.verify(message)
        except NotVerified as error:
            log.warning("SNS message refused: %s", error)
            return json_error(401, f"not a verified SNS message: {error}")
        kind = message["Type"]
        if kind == "SubscriptionConfirmation":
            return await _confirm(str(message.get("SubscribeURL", "")), session)
        if kind == "UnsubscribeConfirmation":
            log.info("SNS unsubscribed %s", message.get("TopicArn"))
            return web.json_response({"ok": True})
        if not await sink.take(body.decode()):
            # Posting failed, or another replica is posting it right now: SNS delivers it again.
            return json_error(503, "the event is not posted yet; SNS delivers it again")
        await sink.flush()
        return web.json_response({"ok": True})

    return sns_webhook


async def _confirm(url: str, session: aiohttp.ClientSession | None) -> web.Response:
    if not is_sns_url(url):
        return json_error(401, "SubscribeURL is not on sns.<region>.amazonaws.com")
    if session is None:
        return json_error(503, "cannot confirm the subscription: no HTTP session")
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=10)) as response:
            if response.status != 200:
                return json_error(502, f"confirming the subscription answered {response.status}")
    except aiohttp.ClientError as error:
        return json_error(502, f"confirming the subscription failed: {type(error).__name__}")
    log.info("SNS subscription confirmed")
    return web.json_response({"ok": True})


def mount(
    app: web.Application,
    sink: EventSink | None,
    config: SnsIntake | None,
    session: aiohttp.ClientSession | None,
) -> None:
    if sink is None or config is None:
        return
    verifier = SnsVerifier(config, session)
    app.router.add_post(PATH, sns_handler(sink, verifier, session))
