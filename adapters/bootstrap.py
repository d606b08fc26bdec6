"""The composition root: builds the whole bot from the config, and nothing else does.

Tests build it the same way, with their own store, clock or chat adapters.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from adapters.cloud.aws import AwsClients, explain_aws_failure
from adapters.cloud.ecs import AwsEcs
from adapters.metrics import PrometheusMetrics
from adapters.store import open_store
from bot.clock import Clock, SystemClock
from bot.config import Config, Settings
from bot.dispatcher import Dispatcher
from bot.jobs import JobManager
from bot.locks import DeployLocks
from bot.notifier import Notifier
from bot.ports.chat import ChatAdapter
from bot.ports.store import Store
from bot.redaction import RedactingFilter, Redactor
from bot.services import Services
from commands import build_registry

log = logging.getLogger(__name__)

# Features add their ports here: each is called once with the half-built bot and may register
# ports in `services.extra`, background tasks, and clean-ups.
Extension = Callable[["Bot"], Awaitable[None]]
EXTENSIONS: list[str] = [
    "adapters.cloud.capacity",
    "adapters.tunnel.extension",
]


@dataclass
class Bot:
    services: Services
    dispatcher: Dispatcher
    aws: AwsClients
    settings: Settings
    runner: str
    metrics: PrometheusMetrics = field(default_factory=PrometheusMetrics)
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    background: set[Any] = field(default_factory=set)

    @property
    def config(self) -> Config:
        return self.services.config

    @property
    def jobs(self) -> JobManager:
        assert self.services.jobs is not None
        return self.services.jobs

    async def close(self) -> None:
        await self.jobs.shutdown()
        for task in list(self.background):
            task.cancel()
        for closer in reversed(self.closers):
            try:
                await closer()
            except Exception:
                log.exception("closing %s failed", closer)
        await self.aws.close()
        await self.services.store.close()


async def build_bot(
    config: Config,
    settings: Settings | None = None,
    *,
    store: Store | None = None,
    clock: Clock | None = None,
    chats: list[ChatAdapter] = (),  # type: ignore[assignment]
    runner: str | None = None,
    lock_lease: timedelta | None = None,
    aws: AwsClients | None = None,
) -> Bot:
    """`lock_lease`: the lease of running jobs (their locks get twice as long); by default
    the config's `jobs.lease`."""
    settings = settings or Settings()
    redactor = Redactor(settings.secret_values())
    _install_log_redaction(redactor)
    metrics = PrometheusMetrics()
    # The config counts every attempt, as AWS_MAX_ATTEMPTS does; botocore's `max_attempts`
    # counts the retries after the first.
    retries = config.aws.max_attempts - 1
    aws = aws or AwsClients(
        endpoint_url=settings.aws_endpoint_url,
        retry_mode=config.aws.retry_mode,
        max_attempts=retries,
    )
    aws.add_client_hook(metrics.observe_aws_client)
    store = store or await open_store(
        config.store,
        endpoint_url=aws.endpoint_url,
        client_hook=metrics.observe_aws_client,
        retry_mode=config.aws.retry_mode,
        max_attempts=retries,
    )
    notifier = Notifier(redactor)
    for chat in chats:
        notifier.register(chat)
    services = Services(
        config=config,
        store=store,
        chat=notifier,
        clock=clock or SystemClock(),
        redactor=redactor,
        ecs=AwsEcs(aws),
        metrics=metrics,
        explain_failure=explain_aws_failure,
    )
    registry = build_registry()
    services.registry = registry
    services.locks = DeployLocks(store, services.clock)
    # Unique per process: replicas on one host must never share a name, or one would renew
    # (and so keep) the jobs of another that died.
    runner = runner or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
    services.jobs = JobManager(services, runner=runner, lease=lock_lease or config.jobs.lease)
    dispatcher = Dispatcher(services, registry)
    services.dispatcher = dispatcher
    bot = Bot(
        services=services,
        dispatcher=dispatcher,
        aws=aws,
        settings=settings,
        runner=runner,
        metrics=metrics,
    )
    try:
        for name in EXTENSIONS:
            module = __import__(name, fromlist=["extend"])
            await module.extend(bot)
    except BaseException:
        # A half-built bot must not keep the store's thread or AWS connections alive.
        await bot.close()
        raise
    return bot


@contextlib.asynccontextmanager
async def running_bot(
    config: Config, settings: Settings | None = None, **kwargs: Any
) -> AsyncIterator[Bot]:
    bot = await build_bot(config, settings, **kwargs)
    try:
        yield bot
    finally:
        await bot.close()


_installed: set[int] = set()


def _install_log_redaction(redactor: Redactor) -> None:
    root = logging.getLogger()
    for handler in root.handlers:
        if id(handler) not in _installed:
            handler.addFilter(RedactingFilter(redactor))
            _installed.add(id(handler))
