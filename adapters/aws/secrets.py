"""Database admin credentials: from AWS Secrets Manager, or `env:NAME` for the environment.

Both hold the JSON of an RDS secret, `{"username": ..., "password": ...}` (other keys such as
host and port are ignored: the database is reached through the bastion). Every password read
here is registered with the redactor before it is used, so it never reaches chat or logs.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field

from botocore.exceptions import BotoCoreError, ClientError

from adapters.aws.clients import AwsClients
from bot.config import AwsScope
from bot.errors import OperationFailed
from bot.redaction import Redactor

ENV_PREFIX = "env:"

# botocore logs every response body at DEBUG, before anyone could know the secret inside.
_BODY_LOGGER = "botocore.parsers"
_SECRET_FIELDS = ("SecretString", "SecretBinary")


class SecretResponseFilter(logging.Filter):
    """Masks a logged response body that carries a Secrets Manager secret value."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno <= logging.DEBUG:
            message = record.getMessage()
            if any(field in message for field in _SECRET_FIELDS):
                record.msg, record.args = "Response body: [redacted: it holds a secret]", None
        return True


def hide_secret_responses() -> None:
    logger = logging.getLogger(_BODY_LOGGER)
    if not any(isinstance(f, SecretResponseFilter) for f in logger.filters):
        logger.addFilter(SecretResponseFilter())


@dataclass(frozen=True)
class AdminCredentials:
    username: str
    password: str = field(repr=False)


class AdminSecrets:
    def __init__(self, aws: AwsClients, redactor: Redactor) -> None:
        self._aws = aws
        self._redactor = redactor
        hide_secret_responses()

    async def admin(self, reference: str, scope: AwsScope) -> AdminCredentials:
        """Read the secret each time: a rotated password is picked up at the next use."""
        if reference.startswith(ENV_PREFIX):
            name = reference.removeprefix(ENV_PREFIX)
            raw = os.environ.get(name)
            if not raw:
                raise OperationFailed(f"the admin secret's environment variable {name} is not set")
        else:
            raw = await self._from_secrets_manager(reference, scope)
        credentials = self._parse(raw, reference)
        self._redactor.add(credentials.password)
        return credentials

    async def _from_secrets_manager(self, secret_id: str, scope: AwsScope) -> str:
        client = await self._aws.client("secretsmanager", scope)
        try:
            answer = await client.get_secret_value(SecretId=secret_id)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "error")
            raise OperationFailed(f"cannot read the admin secret {secret_id}: {code}") from None
        except BotoCoreError as error:
            raise OperationFailed(
                f"cannot read the admin secret {secret_id}: {type(error).__name__}"
            ) from None
        raw = answer.get("SecretString")
        if not isinstance(raw, str):
            raise OperationFailed(f"the admin secret {secret_id} holds no SecretString")
        return raw

    def _parse(self, raw: str, reference: str) -> AdminCredentials:
        # The error names the secret, never its content.
        try:
            data = json.loads(raw)
        except json.JSONDecodeError:
            data = None
        if not isinstance(data, dict):
            raise OperationFailed(f"the admin secret {reference} is not a JSON object")
        username, password = data.get("username"), data.get("password")
        if not isinstance(username, str) or not isinstance(password, str) or not password:
            raise OperationFailed(f"the admin secret {reference} lacks username or password")
        return AdminCredentials(username=username, password=password)
