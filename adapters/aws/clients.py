"""AWS clients through aiobotocore, per environment.

kajitori runs with the standard credential chain (task role, IRSA, profile, environment
variables). An environment with `aws.role_arn` is reached through that role instead: its
session holds credentials from STS AssumeRole that renew themselves `refresh_margin` before
they expire. Clients are created on first use, one per service, credentials (the role, or
the base chain) and region, and closed with the bot. Retries use botocore's standard mode
(or adaptive).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.credentials import AioCredentialResolver, AioDeferredRefreshableCredentials
from aiobotocore.session import AioSession, get_session
from botocore.credentials import CredentialProvider
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from adapters.aws import loader
from bot.config import AwsScope, EnvironmentAws
from bot.errors import Refused

log = logging.getLogger(__name__)

Now = Callable[[], datetime]


# What STS answers when the credentials themselves are at fault.
_CREDENTIAL_ERRORS = frozenset(
    {
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "ExpiredTokenException",
        "AccessDenied",
        "AccessDeniedException",
        "IncompleteSignature",
    }
)


def explain_aws_failure(error: BaseException) -> str | None:
    """What an AWS call that failed after botocore's retries did, in one sentence; None
    for anything that is not an AWS error (it stays an internal error)."""
    if isinstance(error, ClientError):
        detail = error.response.get("Error", {})
        retries = error.response.get("ResponseMetadata", {}).get("RetryAttempts", 0)
        tries = f" after {retries + 1} attempts" if retries else ""
        message = f" ({detail['Message']})" if detail.get("Message") else ""
        return f"AWS {error.operation_name} failed{tries}: {detail.get('Code', '?')}{message}"
    if isinstance(error, BotoCoreError):
        return f"AWS could not be reached: {error}"
    return None


class AwsAccessError(Refused):
    """An environment's role could not be used: it cannot be assumed, or it lands in
    another account than the config says."""

    def __init__(self, envs: str, role_arn: str, reason: str) -> None:
        super().__init__(
            f"environment {envs}: cannot use role {role_arn}: {reason}",
            hint=(
                f"check environments.{envs.partition(',')[0]}.aws in the config, the role's trust "
                "policy and the credentials kajitori runs with (`kajitori doctor`)"
            ),
        )
        self.envs = envs
        self.role_arn = role_arn
        self.reason = reason


@dataclass(frozen=True)
class _Role:
    role_arn: str
    external_id: str | None
    session_name: str
    account_id: str

    @classmethod
    def of(cls, aws: EnvironmentAws) -> _Role:
        return cls(aws.role_arn, aws.external_id, aws.session_name, aws.account_id or aws.account)


def _failure(error: BaseException) -> str:
    if isinstance(error, ClientError):
        detail = error.response.get("Error", {})
        return f"{detail.get('Code', '?')}: {detail.get('Message', '')}".rstrip(": ")
    if isinstance(error, BotoCoreError):
        return str(error)
    return type(error).__name__


class _RoleCredentials(AioDeferredRefreshableCredentials):
    """Assumed-role credentials renewed `margin` before they expire. A failed renewal
    while the old credentials still have a third of the margin left is retried on the next
    call; after that it fails the call (botocore's advisory and mandatory refresh)."""

    def __init__(
        self, refresh_using: Callable[[], Any], time_fetcher: Now, margin: timedelta
    ) -> None:
        super().__init__(refresh_using, "assume-role", time_fetcher=time_fetcher)
        self._advisory_refresh_timeout = int(margin.total_seconds())
        self._mandatory_refresh_timeout = int(margin.total_seconds() * 2 / 3)


class _RoleProvider(CredentialProvider):
    METHOD = "kajitori-assume-role"
    CANONICAL_NAME = "kajitori-assume-role"

    def __init__(self, credentials: _RoleCredentials) -> None:
        super().__init__()
        self._credentials = credentials

    async def load(self) -> _RoleCredentials:
        # aiobotocore's resolver awaits `load`.
        return self._credentials


def tls_verify(endpoint_url: str | None) -> bool | None:
    """What a client's `verify` should be for this endpoint: False for plain HTTP (the
    sandbox, a local emulator), where there is no certificate to check and loading the CA
    bundle would only cost each client ~25 ms of CPU; otherwise botocore's default."""
    return False if endpoint_url and endpoint_url.lower().startswith("http://") else None


def _utc_now() -> datetime:
    return datetime.now(UTC)


# SQS answers a long poll after up to 20 s (WaitTimeSeconds) when no message comes: a read
# timeout as short as the wait would cut routine polls, so SQS's clients wait longer.
LONG_POLL_READ_TIMEOUT = 35.0
LONG_POLL_SERVICES = frozenset({"sqs"})


class AwsClients:
    def __init__(
        self,
        *,
        endpoint_url: str | None = None,
        retry_mode: str = "standard",
        max_attempts: int = 5,
        connect_timeout: float = 5.0,
        read_timeout: float = 20.0,
        long_poll_read_timeout: float = LONG_POLL_READ_TIMEOUT,
        roles: Mapping[str, EnvironmentAws] | None = None,
        regions: Mapping[str, str] | None = None,
        session_duration: timedelta = timedelta(hours=1),
        refresh_margin: timedelta = timedelta(minutes=15),
        now: Now = _utc_now,
    ) -> None:
        """`roles`: the role of each environment that has one; `regions`: each
        environment's region (its STS calls go there). `now` is what the credentials'
        expiry is compared with (tests move it forward)."""
        self._session: AioSession = get_session()
        loader.install(self._session)
        self._endpoint_url = endpoint_url or os.environ.get("AWS_ENDPOINT_URL")
        self._config = AioConfig(
            retries={"mode": retry_mode, "max_attempts": max_attempts},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_pool_connections=50,
        )
        self._long_poll_config = AioConfig(
            retries={"mode": retry_mode, "max_attempts": max_attempts},
            connect_timeout=connect_timeout,
            read_timeout=long_poll_read_timeout,
            max_pool_connections=50,
        )
        self._stack = contextlib.AsyncExitStack()
        self._clients: dict[tuple[str, _Role | None, str], Any] = {}
        self._locks: dict[tuple[str, _Role | None, str], asyncio.Lock] = {}
        self._client_hooks: list[Callable[[Any], None]] = []
        self._roles = {env: _Role.of(aws) for env, aws in (roles or {}).items()}
        self._regions = dict(regions or {})
        self._role_sessions: dict[_Role, AioSession] = {}
        self._duration = session_duration
        self._margin = refresh_margin
        self._now = now
        self._base_account: str | None = None
        self.assumed: Counter[str] = Counter()
        """How often each role was assumed (its credentials fetched or renewed)."""

    @property
    def endpoint_url(self) -> str | None:
        return self._endpoint_url

    def add_client_hook(self, hook: Callable[[Any], None]) -> None:
        """Call `hook(client)` on every client, existing and future (metrics register
        botocore event handlers this way)."""
        self._client_hooks.append(hook)
        for client in self._clients.values():
            hook(client)

    def role_of(self, env: str | None) -> str | None:
        """The role ARN an environment's calls go through, None for the base credentials."""
        role = self._roles.get(env) if env is not None else None
        return role.role_arn if role else None

    async def client(self, service: str, where: AwsScope | str) -> Any:
        """The client of `service` for an environment's scope (its role and region), or
        for a bare region with the credentials kajitori runs with."""
        scope = where if isinstance(where, AwsScope) else AwsScope(None, where)
        role = self._roles.get(scope.env) if scope.env is not None else None
        key = (service, role, scope.region)
        client = self._clients.get(key)
        if client is not None:
            return client
        # One lock per client, so that creating clients for many services and regions at once
        # (a `limits` fan-out) happens concurrently, and each client is still created once.
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            client = self._clients.get(key)
            if client is None:
                session = self._session if role is None else self._role_session(role)
                creator = session.create_client(
                    service,  # type: ignore[call-overload]
                    region_name=scope.region,
                    endpoint_url=self._endpoint_url,
                    verify=tls_verify(self._endpoint_url),
                    config=(
                        self._long_poll_config if service in LONG_POLL_SERVICES else self._config
                    ),
                )
                client = await self._stack.enter_async_context(creator)
                for hook in self._client_hooks:
                    hook(client)
                self._clients[key] = client
        return client

    async def account(self, where: AwsScope | str) -> str:
        """The account an environment's calls reach: its role's, or the base credentials'
        (asked of STS once)."""
        scope = where if isinstance(where, AwsScope) else AwsScope(None, where)
        role = self._roles.get(scope.env) if scope.env is not None else None
        if role is not None:
            return role.account_id
        if self._base_account is None:
            sts = await self.client("sts", scope.region)
            try:
                identity = await sts.get_caller_identity()
            except (ClientError, NoCredentialsError) as error:
                code = (
                    error.response.get("Error", {}).get("Code")
                    if isinstance(error, ClientError)
                    else None
                )
                if isinstance(error, ClientError) and code not in _CREDENTIAL_ERRORS:
                    raise  # throttling or an outage: an AWS failure, not the credentials
                raise Refused(
                    f"the credentials kajitori runs with do not work: {_failure(error)}",
                    hint="check AWS_PROFILE, the task role or AWS_ACCESS_KEY_ID (`kajitori doctor`)",
                ) from None
            self._base_account = str(identity["Account"])
        return self._base_account

    def _role_session(self, role: _Role) -> AioSession:
        session = self._role_sessions.get(role)
        if session is None:
            session = AioSession()
            # The base session's loader: botocore reads its models and endpoints once per
            # process, not once more for each role.
            session.register_component("data_loader", self._session.get_component("data_loader"))
            credentials = _RoleCredentials(
                lambda: self._assume(role), time_fetcher=self._now, margin=self._margin
            )
            session.register_component(
                "credential_provider", AioCredentialResolver([_RoleProvider(credentials)])
            )
            self._role_sessions[role] = session
        return session

    def _envs_of(self, role: _Role) -> list[str]:
        return [env for env, r in self._roles.items() if r == role]

    async def _assume(self, role: _Role) -> dict[str, str]:
        envs = self._envs_of(role)
        label = ",".join(envs) or "?"
        region = next((self._regions[e] for e in envs if e in self._regions), None)
        sts = await self.client("sts", region or self._session.get_config_variable("region"))
        extra = {"ExternalId": role.external_id} if role.external_id else {}
        try:
            response = await sts.assume_role(
                RoleArn=role.role_arn,
                RoleSessionName=role.session_name,
                DurationSeconds=int(self._duration.total_seconds()),
                **extra,
            )
        except (ClientError, BotoCoreError) as error:
            raise AwsAccessError(label, role.role_arn, _failure(error)) from None
        landed = str(response["AssumedRoleUser"]["Arn"]).split(":")[4]
        if landed != role.account_id:
            raise AwsAccessError(
                label,
                role.role_arn,
                f"it lands in account {landed}, not {role.account_id} as the config says",
            )
        self.assumed[role.role_arn] += 1
        credentials = response["Credentials"]
        expiry: datetime = credentials["Expiration"]
        log.info("assumed %s for %s until %s", role.role_arn, label, expiry.isoformat())
        return {
            "access_key": credentials["AccessKeyId"],
            "secret_key": credentials["SecretAccessKey"],
            "token": credentials["SessionToken"],
            "expiry_time": expiry.isoformat(),
            "account_id": landed,
        }

    async def close(self) -> None:
        await self._stack.aclose()
        self._clients.clear()
