"""The SSM port on aiobotocore: agent registrations, Run Command and parameters."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from botocore.exceptions import ClientError

from adapters.aws.clients import AwsClients
from adapters.aws.quotas import error_code, error_message
from bot.config import AwsScope
from bot.errors import OperationFailed, Refused
from bot.ports.ssm import Invocation

# DescribeInstanceInformation takes at most 50 values in its InstanceIds filter.
_FILTER_VALUES = 50


class AwsSsm:
    def __init__(self, clients: AwsClients) -> None:
        self._clients = clients

    async def _ssm(self, scope: AwsScope) -> Any:
        return await self._clients.client("ssm", scope)

    async def managed_instances(self, scope: AwsScope, ids: Sequence[str]) -> dict[str, str]:
        ssm = await self._ssm(scope)
        found: dict[str, str] = {}
        for start in range(0, len(ids), _FILTER_VALUES):
            chunk = list(ids[start : start + _FILTER_VALUES])
            request: dict[str, Any] = {"Filters": [{"Key": "InstanceIds", "Values": chunk}]}
            while True:
                response = await ssm.describe_instance_information(**request)
                for info in response.get("InstanceInformationList", []):
                    found[info["InstanceId"]] = info.get("PingStatus", "Online")
                token = response.get("NextToken")
                if not token:
                    break
                request["NextToken"] = token
        return found

    async def document_exists(self, scope: AwsScope, name: str) -> bool:
        ssm = await self._ssm(scope)
        try:
            await ssm.describe_document(Name=name)
        except ClientError as error:
            if error_code(error) == "InvalidDocument":
                return False
            raise
        return True

    async def send_command(
        self,
        scope: AwsScope,
        document: str,
        parameters: Mapping[str, Sequence[str]],
        instance_ids: Sequence[str],
        *,
        comment: str,
        timeout_seconds: int,
    ) -> str:
        ssm = await self._ssm(scope)
        try:
            response = await ssm.send_command(
                DocumentName=document,
                InstanceIds=list(instance_ids),
                Parameters={k: list(v) for k, v in parameters.items()},
                Comment=comment[:100],
                TimeoutSeconds=max(30, timeout_seconds),
            )
        except ClientError as error:
            if error_code(error) == "InvalidInstanceId":
                raise Refused(
                    f"SSM cannot run commands on {', '.join(instance_ids)}: {error_message(error)}",
                    hint="the instances need a running SSM agent and an instance profile "
                    "with AmazonSSMManagedInstanceCore",
                ) from None
            raise OperationFailed(
                f"SendCommand {document}: {error_code(error)}: {error_message(error)}"
            ) from None
        return str(response["Command"]["CommandId"])

    async def invocations(
        self, scope: AwsScope, command_id: str, instance_ids: Sequence[str]
    ) -> list[Invocation]:
        """One ListCommandInvocations (with details, pages followed) for the whole command:
        a batch costs one call per look, whatever its size; GetCommandInvocation adds the
        output of the invocations that failed."""
        ssm = await self._ssm(scope)
        seen: dict[str, Invocation] = {}
        request: dict[str, Any] = {"CommandId": command_id, "Details": True}
        while True:
            response = await ssm.list_command_invocations(**request)
            for raw in response.get("CommandInvocations", []):
                plugins = raw.get("CommandPlugins") or [{}]
                seen[raw["InstanceId"]] = Invocation(
                    command_id=command_id,
                    instance_id=raw["InstanceId"],
                    status=raw.get("Status", "Pending"),
                    response_code=int(plugins[-1].get("ResponseCode", -1)),
                    stdout=str(plugins[-1].get("Output", "")),
                )
            token = response.get("NextToken")
            if not token:
                break
            request["NextToken"] = token
        found: list[Invocation] = []
        for instance_id in instance_ids:
            invocation = seen.get(instance_id)
            if invocation is None:
                # Just after SendCommand the invocations may not be listed yet.
                invocation = Invocation(
                    command_id=command_id, instance_id=instance_id, status="Pending"
                )
            elif invocation.done and not invocation.succeeded:
                invocation = await self._detailed(ssm, invocation)
            found.append(invocation)
        return found

    async def _detailed(self, ssm: Any, invocation: Invocation) -> Invocation:
        try:
            raw = await ssm.get_command_invocation(
                CommandId=invocation.command_id, InstanceId=invocation.instance_id
            )
        except ClientError:
            return invocation
        return invocation.model_copy(
            update={
                "response_code": int(raw.get("ResponseCode", invocation.response_code)),
                "stdout": raw.get("StandardOutputContent", invocation.stdout),
                "stderr": raw.get("StandardErrorContent", ""),
            }
        )

    async def parameter(self, scope: AwsScope, name: str) -> str | None:
        ssm = await self._ssm(scope)
        try:
            response = await ssm.get_parameter(Name=name)
        except ClientError as error:
            if error_code(error) == "ParameterNotFound":
                return None
            raise
        return str(response["Parameter"]["Value"])
