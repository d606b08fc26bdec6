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

from adapters.aws.capacity import AwsAutoScaling, AwsDatabases, AwsEc2, AwsTargetGroups
from adapters.aws.clients import AwsClients, explain_aws_failure
from adapters.aws.ecs import AwsEcs
from adapters.aws.events import AwsUpcoming, SqsEventQueue
from adapters.aws.quotas import AwsQuotas
from adapters.aws.secrets import AdminSecrets
from adapters.aws.ssm import AwsSsm
from adapters.chat.typetalk import TypetalkChat
from adapters.store import open_store
from adapters.triggers.channels import TriggerChannels
from adapters.tunnel.targets import configured_targets, reachable
from bot.clock import Clock, SystemClock
from bot.config import Config, Settings
from bot.dispatcher import Dispatcher
from bot.errors import Refused
from bot.jobs.manager import JobManager
from bot.kernel import Kernel
from bot.model import DbSessionRecord, Origin
from bot.notifier import Notifier
from bot.polling import Polling
from bot.ports.chat import ChatAdapter
from bot.ports.database import DatabaseTarget, QueryResult, SessionGrant
from bot.ports.metrics import NoMetrics
from bot.ports.store import Store
from bot.redaction import Redactor, install_log_redaction
from bot.services import Core, Services
from bot.spec import Registry
from commands import build_registry

if TYPE_CHECKING:
    from aiohttp import web

    from adapters.aws.doctor import AccessCheck
    from adapters.chat.slack import SlackConnection
    from adapters.prometheus import PrometheusMetrics
    from adapters.triggers.events import QueuePoller
    from adapters.tunnel.queries import TunnelReadQueries
    from adapters.tunnel.sessions import DbSessionManager
    from commands.capacity.quota_watch import QuotaWatcher
    from commands.events.intake import EventIntake

log = logging.getLogger(__name__)

Closer = Callable[[], Awaitable[None]]


class DeferredDatabase:
    """Both database ports (`db` sessions, `sql` queries), through the SSH tunnel adapter,
    which is built, and its libraries (asyncssh, aiomysql) loaded, at first use: most
    commands never reach a database, and a one-shot `kajitori run` should not pay for it."""

    def __init__(self, core: Core, secrets: AdminSecrets, runner: str) -> None:
        self._core = core
        self._secrets = secrets
        self._runner = runner
        self._built: tuple[DbSessionManager, TunnelReadQueries] | None = None
        self._closed = False

    def _build(self) -> tuple[DbSessionManager, TunnelReadQueries]:
        if self._built is None:
            from adapters.tunnel.database_access import DatabaseAccess
            from adapters.tunnel.queries import TunnelReadQueries
            from adapters.tunnel.sessions import DbSessionManager

            access = DatabaseAccess(self._secrets, self._core.clock)
            self._built = (
                DbSessionManager(self._core, access, self._runner),
                TunnelReadQueries(self._core, access),
            )
        return self._built

    @property
    def loaded(self) -> bool:
        return self._built is not None

    @property
    def sessions(self) -> DbSessionManager:
        return self._build()[0]

    @property
    def queries(self) -> TunnelReadQueries:
        return self._build()[1]

    # -- the ports -----------------------------------------------------------------------

    async def open(
        self, target: DatabaseTarget, *, member: str, origin: Origin, duration: timedelta
    ) -> SessionGrant:
        if self._closed and not self.loaded:
            # What the sessions would answer once `close_all` has run.
            raise Refused("kajitori is shutting down; open the session again in a moment")
        return await self.sessions.open(target, member=member, origin=origin, duration=duration)

    async def close(self, session_id: int, *, reason: str, by: Origin) -> DbSessionRecord:
        return await self.sessions.close(session_id, reason=reason, by=by)

    async def list_open(self) -> list[DbSessionRecord]:
        return await self.sessions.list_open()

    async def run(self, target: DatabaseTarget, statement: str, *, member: str) -> QueryResult:
        return await self.queries.run(target, statement, member=member)

    # -- lifecycle -----------------------------------------------------------------------

    async def sweep(self) -> None:
        """What earlier runs left behind (see `DbSessionManager.sweep`). With no bastion
        this host can reach and no session recorded, there is nothing to do, and the
        tunnel stays unloaded."""
        core = self._core
        nowhere = not any(reachable(t) for t in configured_targets(core.config))
        if nowhere and not await core.store.list_db_sessions():
            return
        await self.sessions.sweep()

    async def settled(self) -> None:
        if self._built is not None:
            await self._built[1].settled()

    async def close_all(self) -> None:
        self._closed = True
        if self._built is not None:
            await self._built[0].close_all()


@dataclass
class Bot:
    """The bot as built: the kernel, and the concrete parts that entry points and tests
    need by their own type (the HTTP edges, the metrics, the database sessions)."""

    kernel: Kernel
    settings: Settings
    runner: str
    aws: AwsClients
    metrics: PrometheusMetrics | None  # None in a one-shot `run`
    database: DeferredDatabase
    slack: SlackConnection | None
    typetalk: TypetalkChat
    # The sweep of what earlier runs left behind (tunnels, temporary users), when it runs.
    startup_sweep: asyncio.Task[None] | None = None
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

    @property
    def db_sessions(self) -> DbSessionManager:
        """The database sessions' adapter itself, built (and its libraries loaded) if not yet."""
        return self.database.sessions

    @property
    def read_queries(self) -> TunnelReadQueries:
        return self.database.queries

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
    one_shot: bool = False,
) -> Bot:
    """`lock_lease`: the lease of running jobs (their locks get twice as long); by default
    the config's `jobs.lease`. `polling`: how jobs wait for AWS (tests make it quick).
    `registry`: the commands (every feature's, unless a test adds its own).
    `one_shot`: the bot answers one command and leaves (`kajitori run`): it polls no event
    queue, watches no quota and sweeps nothing that earlier runs left behind."""
    settings = settings or Settings()
    redactor = Redactor(settings.secret_values())
    install_log_redaction(redactor)
    # A one-shot `run` counts nothing: its figures would leave with the process, unread.
    metrics: PrometheusMetrics | None = None
    if not one_shot:
        from adapters.prometheus import PrometheusMetrics

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
    if metrics is not None:
        aws.add_client_hook(metrics.observe_aws_client)
    closers: list[Closer] = [aws.close]
    try:
        store = store or await open_store(
            config.store,
            endpoint_url=aws.endpoint_url,
            client_hook=metrics.observe_aws_client if metrics else None,
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
            metrics=metrics or NoMetrics(),
        )
        runner = runner or _runner_name()
        database = DeferredDatabase(core, AdminSecrets(aws, redactor), runner)
        services = Services(
            **core.parts(),
            ecs=AwsEcs(aws),
            ec2=AwsEc2(aws),
            target_groups=AwsTargetGroups(aws),
            autoscaling=AwsAutoScaling(aws),
            rds=AwsDatabases(aws),
            quotas=AwsQuotas(aws),
            db_sessions=database,
            read_queries=database,
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
            database=database,
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
    closers.append(database.settled)
    # Last, so it runs first at close: sessions end while the chat can still say so.
    closers.append(database.close_all)
    if one_shot:
        # A process that answers one command and leaves starts no poller and sweeps nothing:
        # its exit would wait for the sweep's SSH connections, and the sweep drops the users
        # of every session recorded by a runner on this host, a running server's among them.
        return bot
    # What an earlier run left behind (tunnels, temporary users) goes at start.
    bot.startup_sweep = bot.start_background(database.sweep(), "db-sessions-sweep")
    if config.quota_watch is not None:
        from commands.capacity.quota_watch import QuotaWatcher

        bot.quota_watch = QuotaWatcher(services, services.quotas, config.quota_watch)
        bot.start_background(bot.quota_watch.run(), "quota-watch")
    if config.events is not None:
        from adapters.triggers.events import QueuePoller
        from commands.events.intake import EventIntake

        bot.events = EventIntake(services, config.events)
        if config.events.sns is not None:
            bot.http = aiohttp.ClientSession()
            closers.append(bot.http.close)
        if config.events.queues:
            region = settings.aws_region or next(
                iter(e.region for e in config.environments.values()), "us-east-1"
            )
            bot.event_poller = QueuePoller(bot.events, SqsEventQueue(aws, region), config.events)
            bot.start_background(bot.event_poller.run(), "events-intake")
    return bot


def config_problems(config: Config) -> list[str]:
    """What `check-config` finds beyond the config's shape: the commands it names."""
    from commands.events.checks import suggestion_problems

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


# Slack's Request URL; without SLACK_BOT_TOKEN it answers as `slack.mount` does then.
SLACK_EVENTS_PATH = "/slack/events"


async def _slack_not_configured(_request: web.Request) -> web.Response:
    from aiohttp import web

    reason = "SLACK_BOT_TOKEN is not set"
    return web.json_response({"error": f"Slack is not configured: {reason}"}, status=503)


def build_web_app(bot: Bot, *, metrics_here: bool = True) -> web.Application:
    """`kajitori serve`'s one aiohttp application: health, metrics (unless they have a port
    of their own), Slack, Typetalk and the GitHub and CI webhooks, each mounted here with
    what it needs."""
    # Loaded here, not at start: a one-shot `kajitori run` serves no HTTP.
    from adapters.chat import typetalk
    from adapters.http import health, server
    from adapters.triggers import ci, github

    kernel, settings = bot.kernel, bot.settings
    if bot.metrics is None:
        raise ValueError("a bot built for one command (one_shot) serves no HTTP")
    app = server.new_app(kernel)
    health.mount(app, bot.metrics, kernel.jobs, exposition=metrics_here)
    if bot.slack is not None:
        # slack-bolt loads only where Slack is configured.
        from adapters.chat import slack

        slack.mount(app, kernel, bot.slack, settings)
    else:
        app.router.add_post(SLACK_EVENTS_PATH, _slack_not_configured)
    typetalk.mount(app, kernel, bot.typetalk, settings)
    github.mount(app, kernel, settings)
    ci.mount(app, kernel, settings)
    sns_config = bot.config.events.sns if bot.config.events else None
    if sns_config is not None:
        # cryptography (the SNS signature check) loads only where SNS delivers events.
        from adapters.triggers import sns

        sns.mount(app, bot.events, sns_config, bot.http)
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
    from adapters.http import health, server

    bot = await build_bot(config, settings)
    # A server takes over the jobs of replicas that stopped, and hands its own over when it
    # stops; a shell or `run` does neither, as it leaves soon.
    bot.start_background(bot.jobs.take_over_forever(config.jobs.takeover_interval), "takeovers")
    app = build_web_app(bot, metrics_here=metrics_port is None)
    if socket_mode:
        from adapters.chat import slack

        bot.start_background(slack.run_socket_mode(app, settings), "slack-socket-mode")
    metrics = None
    if metrics_port is not None and bot.metrics is not None:
        metrics = (health.metrics_app(bot.metrics), metrics_port)
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


async def doctor(config: Config, settings: Settings) -> list[AccessCheck]:
    """`kajitori doctor`: each environment's AWS access, checked."""
    from adapters.aws import doctor as aws_doctor

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
    from adapters.aws import iam_policy

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
