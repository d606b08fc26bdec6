"""`POST /webhooks/sns`: an SNS notification signed (SignatureVersion 2) with the key of a
certificate made here, which the config gives for a URL on sns.<region>.amazonaws.com, is
posted; anything unsigned, signed by another key, from another host, for another topic or
not SNS at all is refused and nothing is posted."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from adapters.bootstrap import build_web_app
from adapters.triggers.sns import string_to_sign
from tests.events.aws_examples import ECS_DEPLOYMENT_IN_PROGRESS, as_demo
from tests.events.conftest import BotMaker, events_config
from tests.support.chat import RecordingChat

TOPIC = "arn:aws:sns:ap-northeast-1:123456789012:kajitori-events"
CERT_URL = "https://sns.ap-northeast-1.amazonaws.com/SimpleNotificationService-local.pem"


def make_key_and_certificate(path: Path) -> rsa.RSAPrivateKey:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return key


def notification(event: dict[str, Any], **fields: Any) -> dict[str, Any]:
    message = {
        "Type": "Notification",
        "MessageId": str(uuid.uuid4()),
        "TopicArn": TOPIC,
        "Message": json.dumps(event),
        "Timestamp": "2026-12-01T12:00:00.000Z",
        "SignatureVersion": "2",
        "SigningCertURL": CERT_URL,
        "UnsubscribeURL": "https://sns.ap-northeast-1.amazonaws.com/?Action=Unsubscribe",
    }
    message.update(fields)
    return message


def signed(message: dict[str, Any], key: rsa.RSAPrivateKey) -> dict[str, Any]:
    signature = key.sign(string_to_sign(message), padding.PKCS1v15(), hashes.SHA256())
    return {**message, "Signature": base64.b64encode(signature).decode()}


def staging_deployment() -> dict[str, Any]:
    event = as_demo(ECS_DEPLOYMENT_IN_PROGRESS)
    event["resources"] = ["arn:aws:ecs:ap-northeast-1:123456789012:service/staging/api"]
    return event


@pytest.fixture
def key(tmp_path: Path) -> rsa.RSAPrivateKey:
    return make_key_and_certificate(tmp_path / "sns.pem")


@pytest.fixture
async def server(
    make_bot: BotMaker, tmp_path: Path, key: rsa.RSAPrivateKey
) -> AsyncIterator[tuple[TestServer, RecordingChat]]:
    chat = RecordingChat()
    config = events_config(
        queues=[], sns={"topics": [TOPIC], "certificates": {CERT_URL: str(tmp_path / "sns.pem")}}
    )
    bot = await make_bot(config=config, chat=chat)
    test_server = TestServer(build_web_app(bot), host="127.0.0.1")
    await test_server.start_server()
    try:
        yield test_server, chat
    finally:
        await test_server.close()


async def post(server: TestServer, body: bytes) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(server.make_url("/webhooks/sns"), data=body) as response,
    ):
        return response.status, await response.json()


async def test_a_signed_notification_is_posted_once(
    server: tuple[TestServer, RecordingChat], key: rsa.RSAPrivateKey
) -> None:
    test_server, chat = server
    body = json.dumps(signed(notification(staging_deployment()), key)).encode()
    assert (await post(test_server, body))[0] == 200
    assert (await post(test_server, body))[0] == 200  # SNS retries: posted once
    posts = [p for p in chat.posted if "ECS deployment started" in p.text]
    assert len(posts) == 1 and posts[0].origin.channel == "local:staging"


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"Signature": ""}, "not signed"),
        ({"SignatureVersion": "1"}, "SignatureVersion 2"),
        ({"SigningCertURL": "https://sns.attacker.example/cert.pem"}, "SigningCertURL"),
        ({"SigningCertURL": "http://sns.ap-northeast-1.amazonaws.com/x.pem"}, "SigningCertURL"),
        ({"TopicArn": "arn:aws:sns:ap-northeast-1:123456789012:other"}, "events.sns.topics"),
    ],
)
async def test_an_unsigned_or_foreign_notification_is_refused_and_nothing_posted(
    server: tuple[TestServer, RecordingChat],
    key: rsa.RSAPrivateKey,
    change: dict[str, str],
    why: str,
) -> None:
    test_server, chat = server
    message = signed(notification(staging_deployment()), key)
    message.update(change)
    status, answer = await post(test_server, json.dumps(message).encode())
    assert status == 401
    assert why in answer["error"]
    assert chat.posted == []


async def test_a_notification_signed_by_another_key_or_changed_after_signing_is_refused(
    server: tuple[TestServer, RecordingChat], key: rsa.RSAPrivateKey, tmp_path: Path
) -> None:
    test_server, chat = server
    other = make_key_and_certificate(tmp_path / "other.pem")
    forged = signed(notification(staging_deployment()), other)
    assert (await post(test_server, json.dumps(forged).encode()))[0] == 401
    tampered = signed(notification(staging_deployment()), key)
    tampered["Message"] = json.dumps(staging_deployment())
    status, answer = await post(test_server, json.dumps(tampered).encode())
    assert status == 401 and "does not match" in answer["error"]
    assert chat.posted == []


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'{"hello": "world"}'])
async def test_a_malformed_body_is_refused_and_nothing_posted(
    server: tuple[TestServer, RecordingChat], body: bytes
) -> None:
    test_server, chat = server
    status, answer = await post(test_server, body)
    assert status == 400
    assert answer["error"]
    assert chat.posted == []


async def test_a_subscription_confirmation_is_visited_only_on_sns_hosts(
    server: tuple[TestServer, RecordingChat], key: rsa.RSAPrivateKey
) -> None:
    test_server, chat = server
    confirmation = {
        "Type": "SubscriptionConfirmation",
        "MessageId": str(uuid.uuid4()),
        "Token": "2336412f37",
        "TopicArn": TOPIC,
        "Message": "You have chosen to subscribe to the topic.",
        "SubscribeURL": "https://attacker.example/?Action=ConfirmSubscription",
        "Timestamp": "2026-12-01T12:00:00.000Z",
        "SignatureVersion": "2",
        "SigningCertURL": CERT_URL,
    }
    status, answer = await post(test_server, json.dumps(signed(confirmation, key)).encode())
    assert status == 401 and "SubscribeURL" in answer["error"]
    assert chat.posted == []
