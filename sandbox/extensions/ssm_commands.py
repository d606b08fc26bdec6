"""SSM: agent registrations and Run Command that takes time, per instance.

moto runs every command at once with `Success` for each instance, accepts any instance id,
and has no DescribeInstanceInformation or ListCommandInvocations. Here:

- An EC2 instance is SSM-managed (its agent registered) when it has an IAM instance
  profile: DescribeInstanceInformation lists it `Online` while it runs and
  `ConnectionLost` while it is stopped; instances without a profile are not listed.
- SendCommand refuses an instance that is not managed and online (`InvalidInstanceId`),
  an unknown document (`InvalidDocument`) and parameters the document does not declare
  (`InvalidParameters`). The AWS-owned `AWS-RunShellScript` exists in every account.
- Each invocation is `Pending`, then `InProgress` for `timing.ssm_command` seconds, then
  `Success` (exit code 0) or `Failed` (exit code 1) when a parameter has the word `broken`
  in it, with output that ends in the reason. At most `MaxConcurrency` instances (a
  number or a percentage; default 50) run at once; the others wait their turn.
- GetCommandInvocation, ListCommandInvocations (with `Details`) and ListCommands report
  the status as it stands when asked.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from typing import Any

from moto.core.responses import ActionResult
from moto.ec2.models import ec2_backends
from moto.ssm.exceptions import InvalidDocument, SSMException
from moto.ssm.models import Command, Document, Documents, SimpleSystemManagerBackend
from moto.ssm.responses import SimpleSystemManagerResponse

from sandbox.extensions import model_state
from sandbox.extensions.patching import add, patch
from sandbox.extensions.runtime import Runtime

RUN_SHELL_SCRIPT = "AWS-RunShellScript"
BROKEN = re.compile(r"\bbroken\b")
AGENT_VERSION = "3.3.1142.0"
OUTPUT_LIMIT = 2500  # ListCommandInvocations' Output: the first 2,500 characters
STDOUT_LIMIT = 24000  # GetCommandInvocation's StandardOutputContent: the first 24,000

_RUN_SHELL_SCRIPT_CONTENT = json.dumps(
    {
        "schemaVersion": "2.2",
        "description": "Run a shell script or specify the commands to run.",
        "parameters": {
            "commands": {
                "type": "StringList",
                "description": "(Required) Specify a shell script or a command to run.",
            },
            "workingDirectory": {
                "type": "String",
                "default": "",
                "description": "(Optional) The path to the working directory on your instance.",
            },
            "executionTimeout": {
                "type": "String",
                "default": "3600",
                "description": "(Optional) The time in seconds for a command to complete.",
            },
        },
        "mainSteps": [
            {
                "action": "aws:runShellScript",
                "name": "runShellScript",
                "inputs": {
                    "runCommand": "{{ commands }}",
                    "workingDirectory": "{{ workingDirectory }}",
                    "timeoutSeconds": "{{ executionTimeout }}",
                },
            }
        ],
    }
)


class InvalidInstanceIdError(SSMException):
    def __init__(self, instance_ids: list[str], account_id: str) -> None:
        listed = ", ".join(instance_ids)
        super().__init__(
            "InvalidInstanceId",
            f"Instances [[{listed}]] not in a valid state for account {account_id}",
        )


class InvalidParametersError(SSMException):
    def __init__(self, message: str) -> None:
        super().__init__("InvalidParameters", message)


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, tz=UTC).isoformat()


def _managed(backend: SimpleSystemManagerBackend) -> dict[str, Any]:
    """The region's SSM-managed instances by id: those with an instance profile."""
    ec2 = ec2_backends[backend.account_id][backend.region_name]
    found: dict[str, Any] = {}
    for instance_id in ec2.iam_instance_profile_associations:
        instance = ec2.get_instance_by_id(instance_id)
        if instance is not None and instance.state in ("pending", "running", "stopping", "stopped"):
            found[instance_id] = instance
    return found


def _ping_status(instance: Any) -> str:
    return "Online" if instance.state == "running" else "ConnectionLost"


def _concurrency(value: str, targets: int) -> int:
    value = (value or "50").strip()
    if value.endswith("%"):
        return max(1, math.floor(targets * float(value[:-1]) / 100))
    return max(1, int(value))


def _declared(document: Document) -> set[str]:
    try:
        content = json.loads(document.content)
    except (TypeError, ValueError):
        return set()
    return set((content.get("parameters") or {}).keys())


class Run:
    """One instance's invocation as it plays out."""

    def __init__(self, instance_id: str, starts: float, ends: float, text: str) -> None:
        self.instance_id = instance_id
        self.starts = starts
        self.ends = ends
        self.fails = bool(BROKEN.search(text))
        self.text = text

    def status(self, now: float) -> str:
        if now < self.starts:
            return "Pending"
        if now < self.ends:
            return "InProgress"
        return "Failed" if self.fails else "Success"

    def stdout(self, now: float) -> str:
        if now < self.starts:
            return ""
        lines = [f"running: {self.text}"]
        if now >= self.ends:
            if self.fails:
                lines += [
                    "fetching release",
                    "restarting app.service",
                    "health check http://127.0.0.1:8080/healthz: 500 Internal Server Error",
                    "deploy failed: the new release does not answer its health check",
                ]
            else:
                lines += ["fetching release", "restarting app.service", "healthy: 200 OK"]
        return "\n".join(lines) + "\n"

    def response_code(self, now: float) -> int:
        if now < self.ends:
            return -1
        return 1 if self.fails else 0


def _runs(command: Command) -> dict[str, Run]:
    runs: dict[str, Run] = model_state.get_or_create(command, "runs", dict)
    return runs


def install(runtime: Runtime) -> None:
    def get_documents(original: Any) -> Any:
        def _get_documents(self: SimpleSystemManagerBackend, name: str) -> Documents:
            if name == RUN_SHELL_SCRIPT and name not in self._documents:
                document = Document(  # type: ignore[abstract]
                    account_id=self.account_id,
                    name=name,
                    version_name="",
                    content=_RUN_SHELL_SCRIPT_CONTENT,
                    document_type="Command",
                    document_format="JSON",
                    requires=[],
                    attachments=[],
                    target_type="",
                )
                document.owner = "Amazon"
                self._documents[name] = Documents(document)
            documents: Documents = original(self, name)
            return documents

        return _get_documents

    def wrap_send_command(original: Any) -> Any:
        def send_command(self: SimpleSystemManagerBackend, **kwargs: Any) -> Command:
            name = kwargs.get("document_name") or ""
            try:
                document = self._get_documents(name).get_default_version()
            except InvalidDocument:
                raise InvalidDocument(f"Document with name {name} does not exist.") from None
            declared = _declared(document)
            parameters: dict[str, list[str]] = kwargs.get("parameters") or {}
            unknown = sorted(set(parameters) - declared)
            if unknown:
                raise InvalidParametersError(
                    f"document {name} does not support parameters: {', '.join(unknown)}"
                )
            instance_ids: list[str] = list(kwargs.get("instance_ids") or [])
            with runtime.lock:
                managed = _managed(self)
                invalid = [
                    i for i in instance_ids if i not in managed or managed[i].state != "running"
                ]
                if invalid:
                    raise InvalidInstanceIdError(invalid, self.account_id)
                command: Command = original(self, **kwargs)
                if not kwargs.get("targets"):
                    # moto adds every instance of the region when there are no targets.
                    command.instance_ids = list(instance_ids)
                    command.target_count = command.completed_count = len(instance_ids)
                    command.invocations = [
                        command.invocation_response(i, "aws:runShellScript") for i in instance_ids
                    ]
                text = " ".join(v for values in parameters.values() for v in values)
                width = _concurrency(kwargs.get("max_concurrency") or "50", len(instance_ids))
                step = runtime.delay(runtime.timing.ssm_command)
                now = runtime.now()
                for index, instance_id in enumerate(sorted(instance_ids)):
                    starts = now + (index // width) * step
                    _runs(command)[instance_id] = Run(instance_id, starts, starts + step, text)
            return command

        return send_command

    def invocation(command: Command, run: Run, now: float, details: bool) -> dict[str, Any]:
        status = run.status(now)
        output = run.stdout(now)
        result: dict[str, Any] = {
            "CommandId": command.command_id,
            "InstanceId": run.instance_id,
            "InstanceName": "",
            "Comment": command.comment,
            "DocumentName": command.document_name,
            "DocumentVersion": "$DEFAULT",
            "RequestedDateTime": command.requested_date_time,
            "Status": status,
            "StatusDetails": status,
            "StandardOutputUrl": "",
            "StandardErrorUrl": "",
            "ServiceRole": "",
        }
        if details:
            result["CommandPlugins"] = [
                {
                    "Name": "aws:runShellScript",
                    "Status": status,
                    "StatusDetails": status,
                    "ResponseCode": run.response_code(now),
                    "Output": output[:OUTPUT_LIMIT],
                }
            ]
        return result

    def command_status(command: Command, now: float) -> tuple[str, int, int]:
        runs = list(_runs(command).values())
        statuses = [r.status(now) for r in runs]
        completed = sum(1 for s in statuses if s in ("Success", "Failed"))
        errors = statuses.count("Failed")
        if completed < len(runs):
            status = "InProgress" if any(s != "Pending" for s in statuses) else "Pending"
        else:
            status = "Failed" if errors else "Success"
        return status, completed, errors

    def get_command_invocation(self: SimpleSystemManagerResponse) -> ActionResult:
        command_id = self._get_param("CommandId")
        instance_id = self._get_param("InstanceId")
        command = self.ssm_backend.get_command_by_id(command_id)
        run = _runs(command).get(instance_id)
        if run is None:
            result = self.ssm_backend.get_command_invocation(
                command_id, instance_id, self._get_param("PluginName")
            )
            return ActionResult(result)
        now = runtime.now()
        status = run.status(now)
        started = _iso(run.starts) if now >= run.starts else ""
        ended = _iso(run.ends) if now >= run.ends else ""
        return ActionResult(
            {
                "CommandId": command_id,
                "InstanceId": instance_id,
                "Comment": command.comment,
                "DocumentName": command.document_name,
                "DocumentVersion": "$DEFAULT",
                "PluginName": "aws:runShellScript",
                "ResponseCode": run.response_code(now),
                "ExecutionStartDateTime": started,
                "ExecutionElapsedTime": "",
                "ExecutionEndDateTime": ended,
                "Status": status,
                "StatusDetails": status,
                "StandardOutputContent": run.stdout(now)[:STDOUT_LIMIT],
                "StandardOutputUrl": "",
                "StandardErrorContent": "",
                "StandardErrorUrl": "",
            }
        )

    def list_command_invocations(self: SimpleSystemManagerResponse) -> ActionResult:
        command_id = self._get_param("CommandId")
        instance_id = self._get_param("InstanceId")
        details = bool(self._get_param("Details", False))
        now = runtime.now()
        commands = self.ssm_backend.list_commands(command_id, instance_id)
        found = [
            invocation(command, run, now, details)
            for command in commands
            for run in _runs(command).values()
            if instance_id is None or run.instance_id == instance_id
        ]
        return ActionResult({"CommandInvocations": found})

    def wrap_list_commands(original: Any) -> Any:
        def list_commands(self: SimpleSystemManagerResponse) -> ActionResult:
            result: ActionResult = original(self)
            now = runtime.now()
            by_id = {c.command_id: c for c in self.ssm_backend._commands}
            listed: dict[str, Any] = result.result  # type: ignore[assignment]
            for raw in listed.get("Commands", []):
                command = by_id.get(raw["CommandId"])
                if command is not None and _runs(command):
                    status, completed, errors = command_status(command, now)
                    raw.update(
                        Status=status,
                        StatusDetails=status,
                        CompletedCount=completed,
                        ErrorCount=errors,
                    )
            return result

        return list_commands

    def describe_instance_information(self: SimpleSystemManagerResponse) -> ActionResult:
        wanted: set[str] | None = None
        filters: list[dict[str, Any]] = self._get_param("Filters") or []
        for item in filters:
            if item.get("Key") == "InstanceIds":
                wanted = set(item.get("Values") or [])
        legacy: list[dict[str, Any]] = self._get_param("InstanceInformationFilterList") or []
        for item in legacy:
            if item.get("key") == "InstanceIds":
                wanted = set(item.get("valueSet") or [])
        with runtime.lock:
            managed = _managed(self.ssm_backend)
        found = [
            {
                "InstanceId": instance_id,
                "PingStatus": _ping_status(instance),
                "LastPingDateTime": datetime.now(tz=UTC),
                "AgentVersion": AGENT_VERSION,
                "IsLatestVersion": True,
                "PlatformType": "Linux",
                "PlatformName": "Amazon Linux",
                "PlatformVersion": "2023",
                "ResourceType": "EC2Instance",
                "IPAddress": instance.private_ip,
                "ComputerName": f"ip-{str(instance.private_ip).replace('.', '-')}",
            }
            for instance_id, instance in sorted(managed.items())
            if wanted is None or instance_id in wanted
        ]
        return ActionResult({"InstanceInformationList": found})

    patch(SimpleSystemManagerBackend, "_get_documents", get_documents)
    patch(SimpleSystemManagerBackend, "send_command", wrap_send_command)
    patch(
        SimpleSystemManagerResponse,
        "get_command_invocation",
        lambda _original: get_command_invocation,
    )
    patch(SimpleSystemManagerResponse, "list_commands", wrap_list_commands)
    add(SimpleSystemManagerResponse, "list_command_invocations", list_command_invocations)
    add(SimpleSystemManagerResponse, "describe_instance_information", describe_instance_information)
