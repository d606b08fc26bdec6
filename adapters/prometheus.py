"""Prometheus metrics, one registry per bot (built by the composition root, never global).

The core counts commands and jobs through the `Metrics` port; the HTTP server times each
answer to Slack, Typetalk and the webhooks; every AWS client (the cloud adapters' and the
DynamoDB store's) reports each API call through botocore's event hooks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

# Where an AWS call's start is kept between botocore's events: the request context dict,
# which botocore passes to every event of one API call.
_CALL = "kajitori_call"

_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_JOB_SECONDS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0)


class PrometheusMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.commands = Counter(
            "kajitori_commands",
            "Chat commands answered, by command and outcome",
            ["command", "outcome"],
            registry=registry,
        )
        self.jobs = Counter(
            "kajitori_jobs", "Jobs ended, by outcome", ["outcome"], registry=registry
        )
        self.job_seconds = Histogram(
            "kajitori_job_duration_seconds",
            "How long jobs ran, by outcome",
            ["outcome"],
            buckets=_JOB_SECONDS,
            registry=registry,
        )
        self.jobs_running = Gauge(
            "kajitori_jobs_running", "Jobs running on this replica", registry=registry
        )
        self.lease_renewals = Counter(
            "kajitori_lease_renewals",
            "Leases running jobs renewed in the store, by what (job, lock)",
            ["what"],
            registry=registry,
        )
        self.ack_seconds = Histogram(
            "kajitori_ack_seconds",
            "Time to answer a request from a chat or a webhook sender, by adapter",
            ["adapter"],
            buckets=_SECONDS,
            registry=registry,
        )
        self.requests = Counter(
            "kajitori_http_requests",
            "Requests from chats and webhook senders, by adapter and HTTP status",
            ["adapter", "status"],
            registry=registry,
        )
        self.aws_seconds = Histogram(
            "kajitori_aws_call_duration_seconds",
            "AWS API calls, retries included, by service and operation",
            ["service", "operation"],
            buckets=_SECONDS,
            registry=registry,
        )
        self.aws_errors = Counter(
            "kajitori_aws_call_errors",
            "AWS API calls that failed after their retries, by service, operation and code",
            ["service", "operation", "code"],
            registry=registry,
        )
        self.aws_retries = Counter(
            "kajitori_aws_call_retries",
            "Retries botocore made (throttling, 5xx, connection errors)",
            ["service", "operation"],
            registry=registry,
        )

    # --- the port -----------------------------------------------------------------------

    def command_handled(self, command: str, outcome: str) -> None:
        self.commands.labels(command=command, outcome=outcome).inc()

    def job_finished(self, outcome: str, seconds: float) -> None:
        self.jobs.labels(outcome=outcome).inc()
        self.job_seconds.labels(outcome=outcome).observe(seconds)

    def ack_sent(self, adapter: str, seconds: float) -> None:
        self.ack_seconds.labels(adapter=adapter).observe(seconds)

    def lease_renewed(self, what: str) -> None:
        self.lease_renewals.labels(what=what).inc()

    # --- adapters -----------------------------------------------------------------------

    def request_answered(self, adapter: str, status: int, seconds: float) -> None:
        self.requests.labels(adapter=adapter, status=str(status)).inc()
        self.ack_sent(adapter, seconds)

    def watch_running_jobs(self, count: Callable[[], int]) -> None:
        self.jobs_running.set_function(count)

    def observe_aws_client(self, client: Any) -> None:
        """Time every API call of an aiobotocore client, and count its errors and retries."""
        events = client.meta.events
        # Once per client and registry, even when a client is shared. botocore keeps one
        # namespace of unique ids per emitter, so each event needs an id of its own.
        unique = f"kajitori-metrics-{id(self)}"
        events.register("before-parameter-build", self._aws_call_started, f"{unique}-start")
        events.register("after-call", self._aws_call_ended, f"{unique}-end")
        events.register("after-call-error", self._aws_call_failed, f"{unique}-error")

    def _aws_call_started(self, model: Any, context: dict[str, Any], **_: Any) -> None:
        context[_CALL] = (model.service_model.service_name, model.name, time.perf_counter())

    def _aws_call_ended(
        self, http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any
    ) -> None:
        call = context.pop(_CALL, None)
        if call is None:
            return
        service, operation, started = call
        self.aws_seconds.labels(service=service, operation=operation).observe(
            time.perf_counter() - started
        )
        retries = parsed.get("ResponseMetadata", {}).get("RetryAttempts", 0)
        if retries:
            self.aws_retries.labels(service=service, operation=operation).inc(retries)
        if http_response.status_code >= 300:
            code = parsed.get("Error", {}).get("Code") or str(http_response.status_code)
            self.aws_errors.labels(service=service, operation=operation, code=code).inc()

    def _aws_call_failed(self, exception: BaseException, context: dict[str, Any], **_: Any) -> None:
        """The call raised before any answer (connection refused, read timeout)."""
        call = context.pop(_CALL, None)
        if call is None:
            return
        service, operation, started = call
        self.aws_seconds.labels(service=service, operation=operation).observe(
            time.perf_counter() - started
        )
        code = type(exception).__name__
        self.aws_errors.labels(service=service, operation=operation, code=code).inc()

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
