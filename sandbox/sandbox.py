"""An AWS emulator for demos and tests: moto's server plus kajitori's extensions."""

from __future__ import annotations

import threading
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
from sandbox.extensions import ecs_deployments, route53_limits, service_quotas
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
        app = _SerializedDynamoDB(DomainDispatcherApplication(create_backend_app))
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

    def _started_runtime(self) -> extensions.Runtime:
        if self._runtime is None or self._server is None:
            raise RuntimeError("the sandbox is not started")
        return self._runtime

    def __enter__(self) -> Sandbox:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
