"""An AWS emulator for demos and tests: moto's server plus kajitori's extensions."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import botocore.session
from botocore.config import Config
from moto.core.base_backend import BackendDict, backend_lock
from moto.core.model_instances import model_data, reset_model_data
from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server

from sandbox import extensions
from sandbox.extensions import ecs_deployments, route53_limits, scheduled_events, service_quotas
from sandbox.seed import ACCOUNT_ID, REGION, SEED, seed_demo
from sandbox.timing import SandboxTiming

_SEED_SERVICES = (
    "ecr",
    "ecs",
    "ec2",
    "elbv2",
    "autoscaling",
    "rds",
    "route53",
    "secretsmanager",
    "ssm",
    "iam",
    "sqs",
    "events",
    "cloudwatch",
)


class _QuietRequestHandler(MotoRequestHandler):
    """Leaves out the access log line werkzeug writes for every request."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class _SerializedDynamoDB:
    """DynamoDB applies each write to an item atomically, conditions included; moto's backend
    does not lock between the server's threads, so two conditional writes racing on one item
    could both succeed. One DynamoDB request at a time restores AWS's behaviour."""

    def __init__(self, app: Any) -> None:
        self._app = app
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            with self._lock:
                # Read the whole response inside the lock: the backend works while it is made.
                return list(self._app(environ, start_response))
        return self._app(environ, start_response)


class _Server(ThreadedMotoServer):
    def _server_entry(self) -> None:
        app = scheduled_events.HealthApi(
            _SerializedDynamoDB(DomainDispatcherApplication(create_backend_app))
        )
        self._server = make_server(
            self._ip_address, self._port, app, True, request_handler=_QuietRequestHandler
        )
        self._server_ready_event.set()
        self._server.serve_forever()


def _wipe_moto_state() -> None:
    """Drop every moto backend; each is created afresh on its next use.

    moto's own reset first re-initialises every backend it is about to drop, which costs
    about a second of loading EC2 images for nothing.
    """
    instances: list[BackendDict[Any]] = vars(BackendDict)["_instances"]
    with backend_lock:
        for backends in list(instances):
            # Empty each account's backends too: moto keeps the account objects alive
            # (an lru_cache holds them), and with them every region's state.
            for account_backends in backends.values():
                account_backends.clear()
            backends.clear()
        instances.clear()
    # Some model classes memoise methods with lru_cache, which keeps their objects (and
    # through them whole backends) alive; e.g. Subnet._base_avail_ip_iterator.
    for models in model_data.values():
        for model in models.values():
            for attribute in vars(model).values():
                if hasattr(attribute, "cache_clear"):
                    attribute.cache_clear()
    reset_model_data()
    scheduled_events.clear_health_events()


class _Clients:
    """boto3 clients for seeding, with fake credentials, kept across resets."""

    def __init__(self, url: str) -> None:
        session = botocore.session.get_session()
        config = Config(retries={"max_attempts": 1, "mode": "standard"})
        for service in _SEED_SERVICES:
            client = session.create_client(
                service,
                region_name=REGION,
                endpoint_url=url,
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
                aws_session_token="testing",
                config=config,
            )
            setattr(self, service, client)


class Sandbox:
    """moto's server in this process, with kajitori's extensions and the demo seed.

    moto keeps its state per process, so every Sandbox in a process shares one AWS world
    and one timing (the one set last).
    """

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, timing: SandboxTiming | None = None
    ) -> None:
        self._host = host
        self._port = port
        self._timing = timing or SandboxTiming()
        self._server: _Server | None = None
        self._runtime: extensions.Runtime | None = None
        self._clients: _Clients | None = None
        self._url: str | None = None
        self._lock = threading.Lock()
        self.seeded: dict[str, Any] = {}
        """Ids AWS chose while seeding: `vpc_id`, `subnet_ids`, `image_id`, ..."""

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("the sandbox is not started")
        return self._url

    @property
    def timing(self) -> SandboxTiming:
        return self._timing

    def start(self) -> None:
        with self._lock:
            if self._server is not None:
                return
            self._runtime = extensions.install()
            self._runtime.timing = self._timing
            server = _Server(ip_address=self._host, port=self._port, verbose=False)
            server.start()
            host, port = server.get_host_and_port()
            self._server = server
            self._url = f"http://{host}:{port}"
        self.reset()

    def stop(self) -> None:
        with self._lock:
            if self._server is not None:
                self._server.stop()
            self._server = None
            self._url = None

    def set_timing(self, timing: SandboxTiming) -> None:
        self._timing = timing
        if self._runtime is not None:
            self._runtime.timing = timing

    def reset(self) -> None:
        """Wipe every resource and seed the demo world again."""
        runtime = self._started_runtime()
        _wipe_moto_state()
        runtime.timing = self._timing
        self.seed()

    def seed(self) -> None:
        """Create the demo world (see `sandbox.seed`) in an empty sandbox."""
        runtime = self._started_runtime()
        if self._clients is None:
            self._clients = _Clients(self.url)
        # Not under runtime.lock: seeding goes through the server, whose request
        # threads take that lock.
        with runtime.instantly():
            for (service_code, quota_code), value in SEED.applied_quotas.items():
                self.set_quota(service_code, quota_code, value)
            self.seeded = seed_demo(
                self._clients, deregistration_delay=self._timing.deregistration_delay
            )
            ecs_deployments.settle(runtime, ACCOUNT_ID, REGION)
            self._seed_scheduled_events()

    def _seed_scheduled_events(self) -> None:
        """What AWS schedules, a few days ahead: a reboot of a staging web instance and
        maintenance of staging's database; the retirement of a production web instance
        (an EC2 event and its AWS Health event); and a Health notice for the whole account."""
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        web = self.seeded["web_instance_ids/staging"][0]
        reboot = today + timedelta(days=2, hours=1)
        self.schedule_instance_event(web, "system-reboot", reboot, reboot + timedelta(hours=2))
        update = today + timedelta(days=4, hours=18)
        self.schedule_db_maintenance(
            f"arn:aws:rds:{REGION}:{ACCOUNT_ID}:cluster:main-staging",
            "system-update",
            auto_applied_after=update,
            description="New Operating System update is available",
        )
        retiring = self.seeded["web_instance_ids/production"][0]
        retirement = today + timedelta(days=6, hours=3)
        self.schedule_instance_event(
            retiring, "instance-retirement", retirement, description="degraded hardware"
        )
        self.add_health_event(
            "EC2", "AWS_EC2_INSTANCE_RETIREMENT_SCHEDULED", retirement, entities=(retiring,)
        )
        notice = today + timedelta(days=9)
        self.add_health_event(
            "EC2", "AWS_EC2_OPERATIONAL_NOTIFICATION", notice, category="accountNotification"
        )
        self.seeded["scheduled"] = {
            "ec2": (web, reboot),
            "rds": ("main-staging", update),
            "retirement": (retiring, retirement),
            "account": ("EC2", notice),
        }

    def set_quota(
        self, service_code: str, quota_code: str, value: float, region: str = REGION
    ) -> None:
        """Set the applied value of a Service Quotas quota (as if AWS had raised it)."""
        service_quotas.set_applied_quota(ACCOUNT_ID, region, service_code, quota_code, value)

    def set_hosted_zone_limit(
        self, zone: str, value: int, limit_type: str = "MAX_RRSETS_BY_ZONE"
    ) -> None:
        """Set a Route 53 hosted zone limit; `zone` is an id or a name."""
        route53_limits.set_hosted_zone_limit(ACCOUNT_ID, zone, limit_type, value)

    def set_route53_account_limit(self, limit_type: str, value: int) -> None:
        route53_limits.set_account_limit(ACCOUNT_ID, limit_type, value)

    def schedule_instance_event(
        self,
        instance_id: str,
        code: str,
        not_before: datetime,
        not_after: datetime | None = None,
        *,
        description: str = "",
        region: str = REGION,
        account_id: str = ACCOUNT_ID,
    ) -> str:
        """Schedule an EC2 event (`system-reboot`, `instance-retirement`, ...) on an
        instance, as AWS does; DescribeInstanceStatus lists it. Returns the event's id."""
        return scheduled_events.schedule_instance_event(
            account_id,
            region,
            instance_id,
            code,
            not_before=not_before,
            not_after=not_after,
            description=description,
        )

    def schedule_db_maintenance(
        self,
        arn: str,
        action: str,
        *,
        auto_applied_after: datetime | None = None,
        forced_apply: datetime | None = None,
        description: str = "",
    ) -> None:
        """Make an RDS maintenance action (`system-update`, `db-upgrade`, ...) pending on
        the DB instance or cluster `arn` (in the account the ARN names);
        DescribePendingMaintenanceActions lists it."""
        scheduled_events.schedule_db_maintenance(
            arn.split(":")[4],
            arn,
            action,
            auto_applied_after=auto_applied_after,
            forced_apply=forced_apply,
            description=description,
        )

    def add_health_event(
        self,
        service: str,
        event_type_code: str,
        start: datetime,
        end: datetime | None = None,
        *,
        category: str = "scheduledChange",
        region: str = REGION,
        entities: tuple[str, ...] = (),
        account_id: str = ACCOUNT_ID,
        public: bool = False,
    ) -> str:
        """Record an AWS Health event of the account affecting `entities` (none: the whole
        account), or a `public` one; DescribeEvents lists it (`upcoming` before `start`,
        `open` until `end`, then `closed`), DescribeAffectedEntities its entities. Returns
        its ARN."""
        return scheduled_events.add_health_event(
            account_id,
            region,
            service,
            event_type_code,
            category=category,
            start=start,
            end=end,
            entities=entities,
            public=public,
        )

    def _started_runtime(self) -> extensions.Runtime:
        if self._runtime is None or self._server is None:
            raise RuntimeError("the sandbox is not started")
        return self._runtime

    def __enter__(self) -> Sandbox:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
