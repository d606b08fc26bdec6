"""What the redactor masks of AWS credentials as botocore and AWS write them, and what it
leaves alone."""

from __future__ import annotations

import pytest

from bot.redaction import MASK, Redactor

TOKEN = "QmFkZ2VyVG9rZW4" + "Xq1W2e3R4t5Y6u7I8o9P0" * 4
STS_TOKEN = "IQoJb3JpZ2luX2VjEJr//////////wEaDmFwLW5vcnRoZWFzdC0xIkcwRQIhAO"
SECRET = "kq6FhBDcq8uNAgvUQ0h1x4bD+s0lfMh7KTdrSQWn"
SIGNATURE = "0d93dd9f25e3c66650a11491af022f4a7b712c5a40b6a7c0b5319c49fdcc91fe"


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (f"headers={{'X-Amz-Security-Token': b'{TOKEN}', 'X-Amz-Date': b'x'}}", TOKEN),
        (f"CanonicalRequest:\nhost:sts\nx-amz-security-token:{TOKEN}\n", TOKEN),
        (f"https://bucket.s3/key?X-Amz-Security-Token={TOKEN}&X-Amz-Expires=60", TOKEN),
        (f"session token {STS_TOKEN} as printed anywhere", STS_TOKEN),
        (
            "'Authorization': b'AWS4-HMAC-SHA256 Credential=ASIAY34FZKBOKMUTVV7A/20261201/"
            f"ap-northeast-1/ecs/aws4_request, SignedHeaders=host, Signature={SIGNATURE}'",
            "ASIAY34FZKBOKMUTVV7A",
        ),
        (f"Signature:\n{SIGNATURE}", SIGNATURE),
        (f"<Credentials><SecretAccessKey>{SECRET}</SecretAccessKey></Credentials>", SECRET),
        (f"<SessionToken>{TOKEN}</SessionToken>", TOKEN),
        (f'{{"SecretAccessKey": "{SECRET}", "SessionToken": "{TOKEN}"}}', SECRET),
        (f"aws_secret_access_key={SECRET}", SECRET),
        (f"{{'aws_session_token': '{TOKEN}'}}", TOKEN),
        ("key AKIAIOSFODNN7EXAMPLE in a message", "AKIAIOSFODNN7EXAMPLE"),
    ],
)
def test_aws_credentials_are_masked_wherever_they_stand(text: str, secret: str) -> None:
    cleaned = Redactor().text(text)
    assert secret not in cleaned
    assert MASK in cleaned


def test_ordinary_text_is_left_alone() -> None:
    redactor = Redactor()
    for text in (
        "deploy api staging 0123456789abcdef0123456789abcdef01234567",
        "needs authorization: approve 12",
        "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token",
    ):
        assert redactor.text(text) == text
