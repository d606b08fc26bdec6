"""The composition root: builds the whole bot from the config, and nothing else does.

This is the only module that imports concrete adapters. It builds the frozen `Services`,
the kernel, the background tasks and the clean-ups in one pass, and hands the result to
the entry points (`kajitori serve`, `shell`, `run`, `demo`) as a parameter. Tests build
the bot the same way, with their own store, clock or chat adapters.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import aiohttp

from adapters.aws import doctor as aws_doctor
from adapters.aws import iam_policy
from adapters.aws.capacity import AwsAutoScaling, AwsDatabases, AwsEc2, AwsTargetGroups
from adapters.aws.clients import AwsClients, explain_aws_failure
from adapters.aws.ecs import AwsEcs
from adapters.aws.events import AwsUpcoming, SqsEventQueue
from adapters.aws.quotas import AwsQuotas
from adapters.aws.secrets import AdminSecrets
from adapters.aws.ssm import AwsSsm
from adapters.chat.typetalk import TypetalkChat
from adapters.prometheus import PrometheusMetrics
from adapters.store import open_store
from adapters.triggers.common import TriggerChannels
from adapters.triggers.events import QueuePoller
from adapters.tunnel.database_access import DatabaseAccess
from adapters.tunnel.queries import TunnelReadQueries
from adapters.tunnel.sessions import DbSessionManager
from bot.clock import Clock, SystemClock
from bot.config import Config, Settings
from bot.dispatcher import Dispatcher
from bot.jobs.manager import JobManager
from bot.kernel import Kernel
from bot.notifier import Notifier
from bot.polling import Polling
from bot.ports.chat import ChatAdapter
from bot.ports.store import Store
from bot.redaction import Redactor, install_log_redaction
from bot.services import Core, Services
from bot.spec import Registry
from commands import build_registry
from commands.capacity.quota_watch import QuotaWatcher
from commands.events.checks import suggestion_problems
from commands.events.intake import EventIntake

if TYPE_CHECKING:
    from aiohttp import web

    from adapters.chat.slack import SlackConnection

log = logging.getLogger(__name__)

Closer = Callable[[], Awaitable[None]]


@dataclass
class Bot:
    """The bot as built: the kernel, and the concrete parts that entry points and tests
    need by their own type (the HTTP edges, the metrics, the database sessions)."""

    kernel: Kernel
    settings: Settings
    runner: str
    aws: AwsClients
    metrics: PrometheusMetrics
    db_sessions: DbSessionManager
    read_queries: TunnelReadQueries
    slack: SlackConnection | None
    typetalk: TypetalkChat
    quota_watch: QuotaWatcher | None = None
    events: EventIntake | None = None
    event_poller: QueuePoller | None = None
    http: aiohttp.ClientSession | None = None
    closers: list[Closer] = field(default_factory=list)
    background: set[asyncio.Task[Any]] = field(default_factory=set)

    @property
    def services(self) -> Services:
        return self.kernel.services

    @property
    def config(self) -> Config:
        return self.kernel.config

    @property
    def dispatcher(self) -> Dispatcher:
        return self.kernel.dispatcher

    @property
    def jobs(self) -> JobManager:
        return self.kernel.jobs

    def start_background(self, work: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(work)
        task.set_name(name)
        self.background.add(task)
        task.add_done_callback(self.background.discard)
        return task

    async def close(self) -> None:
        await self.jobs.shutdown()
        tasks = list(self.background)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for closer in reversed(self.closers):
            try:
                await closer()
            except Exception:
                log.exception("closing %s failed", closer)


async def build_bot(
    config: Config,
    settings: Settings | None = None,
    *,
    store: Store | None = None,
    clock: Clock | None = None,
    chats: Sequence[ChatAdapter] = (),
    runner: str | None = None,
    lock_lease: timedelta | None = None,
    aws: AwsClients | None = None,
    polling: Polling | None = None,
    registry: Registry | None = None,
    event_intake: bool = True,
) -> Bot:
    """`lock_lease`: the lease of running jobs (their locks get twice as long); by default
    the config's `jobs.lease`. `polling`: how jobs wait for AWS (tests make it quick).
    `registry`: the commands (every feature's, unless a test adds its own).
    `event_intake`: poll the config's event queues (`kajitori run` does not)."""
    settings = settings or Settings()
    redactor = Redactor(settings.secret_values())
    install_log_redaction(redactor)
    metrics = PrometheusMetrics()
    # The config counts every attempt, as AWS_MAX_ATTEMPTS does; botocore's `max_attempts`
    # counts the retries after the first.
    retries = config.aws.max_attempts - 1
    aws = aws or AwsClients(
        endpoint_url=settings.aws_endpoint_url,
        retry_mode=config.aws.retry_mode,
        max_attempts=retries,
        **aws_access(config),
    )
    aws.add_client_hook(metrics.observe_aws_client)
    closers: list[Closer] = [aws.close]
    try:
        store = store or await open_store(
            config.store,
            endpoint_url=aws.endpoint_url,
            client_hook=metrics.observe_aws_client,
            retry_mode=config.aws.retry_mode,
            max_attempts=retries,
        )
        closers.append(store.close)
        slack_connection: SlackConnection | None = None
        if settings.slack_bot_token is not None:
            # slack-bolt and its Web API client load only where Slack is configured.
            from adapters.chat import slack

            slack_connection = slack.connect(settings, config.slack)
        if slack_connection is not None:
            closers.append(slack_connection.close)
        typetalk_chat = TypetalkChat(
            settings.typetalk_api_url, settings.typetalk_token, bot_name=config.typetalk.bot
        )
        closers.append(typetalk_chat.close)
        chat_adapters: list[ChatAdapter] = [typetalk_chat, *chats]
        if slack_connection is not None:
            chat_adapters.insert(0, slack_connection.chat)
        people = Notifier(redactor, chat_adapters)
        # What is said to a trigger (`github:acme/api`, `ci:jenkins`) goes to its channels.
        notifier = people.with_adapters(
            [TriggerChannels(name, people, config) for name in ("github", "ci")]
        )
        clock = clock or SystemClock()
        core = Core(
            config=config,
            store=store,
            chat=notifier,
            clock=clock,
            redactor=redactor,
            metrics=metrics,
        )
        runner = runner or _runner_name()
        database_access = DatabaseAccess(AdminSecrets(aws, redactor), clock)
        db_sessions = DbSessionManager(core, database_access, runner)
        read_queries = TunnelReadQueries(core, database_access)
        services = Services(
            **core.parts(),
            ecs=AwsEcs(aws),
            ec2=AwsEc2(aws),
            target_groups=AwsTargetGroups(aws),
            autoscaling=AwsAutoScaling(aws),
            rds=AwsDatabases(aws),
            quotas=AwsQuotas(aws),
            db_sessions=db_sessions,
            read_queries=read_queries,
            accounts=aws,
            ssm=AwsSsm(aws),
            upcoming=AwsUpcoming(aws),
            polling=polling or Polling(),
            explain_failure=explain_aws_failure,
        )
        kernel = Kernel.build(
            services,
            registry or build_registry(),
            runner=runner,
            lease=lock_lease or config.jobs.lease,
        )
        bot = Bot(
            kernel=kernel,
            settings=settings,
            runner=runner,
            aws=aws,
            metrics=metrics,
            db_sessions=db_sessions,
            read_queries=read_queries,
            slack=slack_connection,
            typetalk=typetalk_chat,
            closers=closers,
        )
    except BaseException:
        # A half-built bot must not keep the store's thread or AWS connections alive.
        for closer in reversed(closers):
            with contextlib.suppress(Exception):
                await closer()
        raise
    closers.append(read_queries.settled)
    # Last, so it runs first at close: sessions end while the chat can still say so.
    closers.append(db_sessions.close_all)
    # What an earlier run left behind (tunnels, temporary users) goes at start.
    db_sessions.startup_sweep = bot.start_background(db_sessions.sweep(), "db-sessions-sweep")
    if config.quota_watch is not None:
        bot.quota_watch = QuotaWatcher(services, services.quotas, config.quota_watch)
        bot.start_background(bot.quota_watch.run(), "quota-watch")
    if config.events is not None:
        bot.events = EventIntake(services, config.events)
        if config.events.sns is not None:
            bot.http = aiohttp.ClientSession()
            closers.append(bot.http.close)
        if config.events.queues and event_intake:
            region = settings.aws_region or next(
                iter(e.region for e in config.environments.values()), "us-east-1"
            )
            bot.event_poller = QueuePoller(bot.events, SqsEventQueue(aws, region), config.events)
            bot.start_background(bot.event_poller.run(), "events-intake")
    return bot


def config_problems(config: Config) -> list[str]:
    """What `check-config` finds beyond the config's shape: the commands it names."""
    return suggestion_problems(config, build_registry())


@contextlib.asynccontextmanager
async def running_bot(
    config: Config, settings: Settings | None = None, **kwargs: Any
) -> AsyncIterator[Bot]:
    bot = await build_bot(config, settings, **kwargs)
    try:
        yield bot
    finally:
        await bot.close()


def build_web_app(bot: Bot, *, metrics_here: bool = True) -> web.Application:
    """`kajitori serve`'s one aiohttp application: health, metrics (unless they have a port
    of their own), Slack, Typetalk and the GitHub and CI webhooks, each mounted here with
    what it needs."""
    # Loaded here, not at start: a one-shot `kajitori run` serves no HTTP.
    from adapters.chat import slack, typetalk
    from adapters.http import health, server
    from adapters.triggers import ci, github, sns

    kernel, settings = bot.kernel, bot.settings
    app = server.new_app(kernel)
    health.mount(app, bot.metrics, kernel.jobs, exposition=metrics_here)
    slack.mount(app, kernel, bot.slack, settings)
    typetalk.mount(app, kernel, bot.typetalk, settings)
    github.mount(app, kernel, settings)
    ci.mount(app, kernel, settings)
    sns.mount(app, bot.events, bot.config.events.sns if bot.config.events else None, bot.http)
    return app


async def serve(
    config: Config,
    settings: Settings,
    *,
    host: str = "0.0.0.0",
    port: int = 3000,
    socket_mode: bool = False,
    metrics_port: int | None = None,
) -> None:
    """`kajitori serve`: the bot behind its HTTP server until SIGTERM or SIGINT; with
    `metrics_port`, `GET /metrics` is served on that port (same host) instead."""
    from adapters.chat import slack
    from adapters.http import health, server

    bot = await build_bot(config, settings)
    # A server takes over the jobs of replicas that stopped, and hands its own over when it
    # stops; a shell or `run` does neither, as it leaves soon.
    bot.start_background(bot.jobs.take_over_forever(config.jobs.takeover_interval), "takeovers")
    app = build_web_app(bot, metrics_here=metrics_port is None)
    if socket_mode:
        bot.start_background(slack.run_socket_mode(app, settings), "slack-socket-mode")
    metrics = None if metrics_port is None else (health.metrics_app(bot.metrics), metrics_port)
    try:
        await server.run(app, host=host, port=port, metrics=metrics)
    finally:
        await bot.close()


def aws_clients(config: Config, settings: Settings) -> AwsClients:
    """The AWS clients alone (`doctor`, `iam-policy`), as the bot would build them."""
    return AwsClients(
        endpoint_url=settings.aws_endpoint_url,
        retry_mode=config.aws.retry_mode,
        max_attempts=config.aws.max_attempts - 1,
        **aws_access(config),
    )


async def doctor(config: Config, settings: Settings) -> list[aws_doctor.AccessCheck]:
    """`kajitori doctor`: each environment's AWS access, checked."""
    aws = aws_clients(config, settings)
    try:
        return await aws_doctor.check_all(aws, config)
    finally:
        await aws.close()


@dataclass
class GeneratedPolicies:
    policies: dict[str, dict[str, Any]]  # by account id
    accounts: dict[str, str]  # environment -> account
    external_ids: dict[str, list[str]]  # account -> the external ids its roles expect
    notes: list[str]


async def generate_policies(
    config: Config, settings: Settings, envs: Sequence[str]
) -> GeneratedPolicies:
    """`kajitori iam-policy`: the policies for `envs`, from what AWS says they are; the
    account kajitori runs in also gets its own needs when one of `envs` uses its
    credentials, or when all environments are asked for."""
    aws = aws_clients(config, settings)
    try:
        facts = await iam_policy.discover(aws, config, envs)
        everything = set(envs) == set(config.environments)
        runtime = None
        if everything or any(f.role_arn is None for f in facts):
            first = config.environment(envs[0]).region
            runtime = iam_policy.RuntimeFacts(
                account=await aws.account(first),
                table=iam_policy.dynamodb_table(config.store, first),
                roles=sorted({f.role_arn for f in facts if f.role_arn}),
                queues=list(config.events.queues) if config.events else [],
            )
    finally:
        await aws.close()
    external: dict[str, list[str]] = {}
    for fact in facts:
        aws_config = config.environment(fact.env).aws
        if aws_config is not None and aws_config.external_id:
            external.setdefault(fact.account, []).append(aws_config.external_id)
    return GeneratedPolicies(
        policies=iam_policy.policies(config, facts, runtime),
        accounts={f.env: f.account for f in facts},
        external_ids=external,
        notes=[note for f in facts for note in f.notes],
    )


def aws_access(config: Config) -> dict[str, Any]:
    """The `AwsClients` arguments that give each environment its role (if it has one)."""
    return {
        "roles": {name: env.aws for name, env in config.environments.items() if env.aws},
        "regions": {name: env.region for name, env in config.environments.items()},
        "session_duration": config.aws.session_duration,
        "refresh_margin": config.aws.refresh_margin,
    }


def _runner_name() -> str:
    # Unique per process: replicas on one host must never share a name, or one would renew
    # (and so keep) the jobs of another that died.
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
