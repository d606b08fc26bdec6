"""`kajitori iam-policy`: the least-privilege IAM policy for exactly what the config names.

Two steps. `discover` reads, through each environment's own credentials, what the config
only names: the ECS services' current task definitions (family, task and execution roles,
image repository), the launch templates' ids and subnets, the target groups', Auto Scaling
groups' and databases' ARNs. `policies` then writes one policy per account from those
facts, with nothing by wildcard where AWS can scope an action to a resource.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlparse

from botocore.exceptions import BotoCoreError, ClientError

from adapters.aws.clients import AwsClients
from bot.config import Config, Environment
from bot.errors import Refused
from bot.ports.capacity import ENV_TAG, SERVICE_TAG
from bot.ports.ecs import ecr_registry, image_repository

# Where an account is not known (no role, and AWS was not asked), a placeholder; the
# CloudFormation output puts `${AWS::AccountId}` there.
ACCOUNT_PLACEHOLDER = "ACCOUNT_ID"

# Reads whose IAM actions take no resource ARN (AWS accepts only "*"), or that list what is
# there to find the configured resources in it.
UNSCOPED_READS = (
    "autoscaling:DescribeAccountLimits",
    "autoscaling:DescribeAutoScalingGroups",
    "autoscaling:DescribeLaunchConfigurations",
    "ec2:DescribeAddresses",
    "ec2:DescribeInstanceTypes",
    "ec2:DescribeInstances",
    "ec2:DescribeLaunchTemplateVersions",
    "ec2:DescribeSubnets",
    "ec2:DescribeVpcs",
    "ecs:DescribeTaskDefinition",
    "ecs:ListClusters",
    "ecs:ListTasks",
    "elasticloadbalancing:DescribeAccountLimits",
    "elasticloadbalancing:DescribeLoadBalancers",
    "elasticloadbalancing:DescribeTargetGroups",
    "elasticloadbalancing:DescribeTargetHealth",
    "rds:DescribeOrderableDBInstanceOptions",
    "route53:GetHostedZoneLimit",
    "route53:ListHostedZones",
    "servicequotas:GetAWSDefaultServiceQuota",
    "servicequotas:GetServiceQuota",
    # Fleet and Auto Scaling deploys, `events ENV`: reads AWS takes on `*` only.
    "autoscaling:DescribeInstanceRefreshes",
    "ec2:DescribeImages",
    "ec2:DescribeInstanceStatus",
    "elasticloadbalancing:DescribeTargetGroupAttributes",
    "health:DescribeAffectedEntities",
    "health:DescribeEvents",
    "rds:DescribePendingMaintenanceActions",
    "ssm:DescribeInstanceInformation",
    "ssm:GetCommandInvocation",
    "ssm:ListCommandInvocations",
)
# What RunInstances touches besides the launch template and the subnet.
_RUN_INSTANCES_ALSO = ("instance", "volume", "network-interface", "security-group", "key-pair")
_PARTITION = re.compile(r"^arn:(aws[a-z-]*):")


@dataclass
class EcsFacts:
    cluster: str
    service: str
    family: str
    roles: list[str]
    repository: tuple[str, str, str] | None  # (account, region, name) of an ECR image


@dataclass
class FleetFacts:
    service: str
    template_id: str
    subnets: list[str]
    target_group_arn: str
    pass_roles: list[str]


@dataclass
class DatabaseFacts:
    cluster: str
    instances: list[str]
    secret: str | None  # a Secrets Manager name or ARN


@dataclass
class EnvFacts:
    env: str
    account: str
    region: str
    role_arn: str | None
    ecs: list[EcsFacts] = field(default_factory=list)
    fleets: list[FleetFacts] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    databases: list[DatabaseFacts] = field(default_factory=list)
    # Deploys beyond ECS: the SSM documents fleets run, the SSM parameter paths that name
    # Auto Scaling groups' AMIs (`/app/worker/ami/*`), the groups that deploy by refresh.
    documents: list[str] = field(default_factory=list)
    parameters: list[str] = field(default_factory=list)
    refreshed_groups: list[str] = field(default_factory=list)
    refreshed_templates: list[str] = field(default_factory=list)  # their launch template ids
    notes: list[str] = field(default_factory=list)


def _why(error: BaseException) -> str:
    if isinstance(error, ClientError):
        detail = error.response.get("Error", {})
        return f"{detail.get('Code')}: {detail.get('Message')}"
    return str(error)


async def discover(aws: AwsClients, config: Config, env_names: Sequence[str]) -> list[EnvFacts]:
    """What the named environments' resources are, read through their own credentials."""
    return list(
        await asyncio.gather(*(_discover_env(aws, config.environment(e)) for e in env_names))
    )


async def _discover_env(aws: AwsClients, env: Environment) -> EnvFacts:
    scope = env.scope
    name = scope.env or "?"
    try:
        account = await aws.account(scope)
        facts = EnvFacts(name, account, env.region, aws.role_of(scope.env))
        ecs = await aws.client("ecs", scope)
        ec2 = await aws.client("ec2", scope)
        elbv2 = await aws.client("elbv2", scope)
        rds = await aws.client("rds", scope)
        for service_name, service in env.services.items():
            where = f"environments.{name}.services.{service_name}"
            if service.fleet_deploy is not None:
                facts.documents.append(service.fleet_deploy.ssm_document)
            if service.asg is not None and service.asg_deploy is not None:
                facts.refreshed_groups.append(service.asg.name)
                autoscaling = await aws.client("autoscaling", scope)
                described = await autoscaling.describe_auto_scaling_groups(
                    AutoScalingGroupNames=[service.asg.name]
                )
                for group in described.get("AutoScalingGroups", []):
                    template = group.get("LaunchTemplate") or {}
                    if template.get("LaunchTemplateId"):
                        facts.refreshed_templates.append(str(template["LaunchTemplateId"]))
                if service.asg_deploy.image_parameter:
                    path = service.asg_deploy.image_parameter.split("{", 1)[0].lstrip("/")
                    facts.parameters.append(path + "*")
            if service.ecs is not None:
                target = service.ecs
                found = await ecs.describe_services(
                    cluster=target.cluster, services=[target.service]
                )
                if not found.get("services"):
                    raise Refused(
                        f"{where}: ECS service {target.cluster}/{target.service} not found"
                    )
                definition = (
                    await ecs.describe_task_definition(
                        taskDefinition=found["services"][0]["taskDefinition"]
                    )
                )["taskDefinition"]
                roles = [
                    definition[key]
                    for key in ("taskRoleArn", "executionRoleArn")
                    if definition.get(key)
                ]
                image = next(
                    (
                        c["image"]
                        for c in definition["containerDefinitions"]
                        if c["name"] == target.container
                    ),
                    "",
                )
                registry = ecr_registry(image)
                repository = target.repository or image_repository(image)
                facts.ecs.append(
                    EcsFacts(
                        cluster=target.cluster,
                        service=target.service,
                        family=definition["family"],
                        roles=sorted({*roles, *target.pass_roles}),
                        repository=(registry[0], registry[1], repository)
                        if registry
                        else (account, env.region, repository)
                        if target.repository
                        else None,
                    )
                )
            elif service.fleet is not None:
                fleet = service.fleet
                version = (
                    await ec2.describe_launch_template_versions(
                        LaunchTemplateName=fleet.launch_template, Versions=["$Default"]
                    )
                )["LaunchTemplateVersions"][0]
                data = version.get("LaunchTemplateData", {})
                subnets = list(fleet.subnets) or [
                    i["SubnetId"] for i in data.get("NetworkInterfaces", []) if i.get("SubnetId")
                ]
                if data.get("IamInstanceProfile") and not fleet.pass_roles:
                    facts.notes.append(
                        f"{where}: launch template {fleet.launch_template} has an instance "
                        "profile; list its role under fleet.pass_roles to allow launching it"
                    )
                group = (await elbv2.describe_target_groups(Names=[fleet.target_group]))[
                    "TargetGroups"
                ][0]
                facts.fleets.append(
                    FleetFacts(
                        service=service_name,
                        template_id=version["LaunchTemplateId"],
                        subnets=sorted(subnets),
                        target_group_arn=group["TargetGroupArn"],
                        pass_roles=list(fleet.pass_roles),
                    )
                )
            elif service.asg is not None:
                facts.groups.append(service.asg.name)
        for database in env.databases.values():
            secret = None if database.admin_secret.startswith("env:") else database.admin_secret
            instances: list[str] = []
            if database.cluster:
                cluster = (await rds.describe_db_clusters(DBClusterIdentifier=database.cluster))[
                    "DBClusters"
                ][0]
                instances = sorted(m["DBInstanceIdentifier"] for m in cluster["DBClusterMembers"])
            facts.databases.append(DatabaseFacts(database.cluster or "", instances, secret))
    except (ClientError, BotoCoreError) as error:
        raise Refused(
            f"environment {name}: cannot read what the config names: {_why(error)}"
        ) from None
    return facts


def _arn(partition: str, service: str, region: str, account: str, resource: str) -> str:
    return f"arn:{partition}:{service}:{region}:{account}:{resource}"


def _statement(
    sid: str, actions: Iterable[str], resources: Iterable[str], condition: Any = None
) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "Sid": sid,
        "Effect": "Allow",
        "Action": sorted(set(actions)),
        "Resource": sorted(set(resources)),
    }
    if len(statement["Resource"]) == 1:
        statement["Resource"] = statement["Resource"][0]
    if condition:
        statement["Condition"] = condition
    return statement


def _one_or_list(values: Iterable[str]) -> str | list[str]:
    unique = sorted(set(values))
    return unique[0] if len(unique) == 1 else unique


def _secret_arn(partition: str, region: str, account: str, secret: str) -> str:
    if secret.startswith("arn:"):
        return secret
    # Secrets Manager adds a dash and six random characters to a secret's name.
    return _arn(partition, "secretsmanager", region, account, f"secret:{secret}-??????")


def account_policy(
    facts: Sequence[EnvFacts], *, partition: str = "aws", runtime: RuntimeFacts | None = None
) -> dict[str, Any]:
    """One account's policy: what `facts` (environments in that account) name, and, with
    `runtime`, what kajitori itself needs where it runs (its table, the roles it assumes)."""
    statements: list[dict[str, Any]] = []
    p = partition
    if facts:
        statements.append(_statement("ReadWhatTakesNoResourceArn", UNSCOPED_READS, ["*"]))
    services: list[str] = []
    tasks: list[str] = []
    families: list[str] = []
    repositories: list[str] = []
    task_roles: list[str] = []
    templates: list[str] = []
    subnets: list[str] = []
    unknown_subnets = False
    target_groups: list[str] = []
    instance_roles: list[str] = []
    fleet_services: list[str] = []
    fleet_envs: list[str] = []
    groups: list[str] = []
    ecs_clusters: list[str] = []
    container_instances: list[str] = []
    clusters: list[str] = []
    instances: list[str] = []
    secrets: list[str] = []
    for env in facts:
        a, r = env.account, env.region
        for ecs in env.ecs:
            services.append(_arn(p, "ecs", r, a, f"service/{ecs.cluster}/{ecs.service}"))
            tasks.append(_arn(p, "ecs", r, a, f"task/{ecs.cluster}/*"))
            ecs_clusters.append(_arn(p, "ecs", r, a, f"cluster/{ecs.cluster}"))
            container_instances.append(_arn(p, "ecs", r, a, f"container-instance/{ecs.cluster}/*"))
            families.append(_arn(p, "ecs", r, a, f"task-definition/{ecs.family}:*"))
            task_roles.extend(ecs.roles)
            if ecs.repository is not None:
                registry, region, name = ecs.repository
                repositories.append(_arn(p, "ecr", region, registry, f"repository/{name}"))
        for fleet in env.fleets:
            templates.append(_arn(p, "ec2", r, a, f"launch-template/{fleet.template_id}"))
            subnets.extend(_arn(p, "ec2", r, a, f"subnet/{s}") for s in fleet.subnets)
            unknown_subnets = unknown_subnets or not fleet.subnets
            # By name: a group's ARN ends in an id AWS picks, which a re-created group changes.
            name = fleet.target_group_arn.split(":targetgroup/", 1)[-1].split("/", 1)[0]
            target_groups.append(_arn(p, "elasticloadbalancing", r, a, f"targetgroup/{name}/*"))
            instance_roles.extend(fleet.pass_roles)
            fleet_services.append(fleet.service)
            fleet_envs.append(env.env)
        groups.extend(
            _arn(p, "autoscaling", r, a, f"autoScalingGroup:*:autoScalingGroupName/{name}")
            for name in env.groups
        )
        for database in env.databases:
            if database.cluster:
                clusters.append(_arn(p, "rds", r, a, f"cluster:{database.cluster}"))
            instances.extend(_arn(p, "rds", r, a, f"db:{i}") for i in database.instances)
            if database.secret:
                secrets.append(_secret_arn(p, r, a, database.secret))
    if services:
        statements.append(
            _statement("ReadTheConfiguredEcsServices", ["ecs:DescribeServices"], services)
        )
        statements.append(_statement("ReadTheirTasks", ["ecs:DescribeTasks"], tasks))
        # `events ENV`: the EC2 instances of the clusters (EC2 launch type) the services run on.
        statements.append(
            _statement(
                "ListTheirContainerInstances",
                ["ecs:ListContainerInstances"],
                ecs_clusters,
            )
        )
        statements.append(
            _statement(
                "ReadTheirContainerInstances",
                ["ecs:DescribeContainerInstances"],
                container_instances,
            )
        )
        statements.append(
            _statement("DeployAndScaleTheConfiguredEcsServices", ["ecs:UpdateService"], services)
        )
        # RegisterTaskDefinition takes no resource ARN: AWS accepts only "*" for it. What a
        # new revision may run as is bounded by iam:PassRole below.
        statements.append(
            _statement("RegisterTaskDefinitionRevisions", ["ecs:RegisterTaskDefinition"], ["*"])
        )
        statements.append(
            _statement(
                "KeepTagsOnNewRevisionsOfTheConfiguredFamilies",
                ["ecs:TagResource"],
                families,
                {"StringEquals": {"ecs:CreateAction": "RegisterTaskDefinition"}},
            )
        )
    if task_roles:
        statements.append(
            _statement(
                "PassOnlyTheRolesTheServicesRunAs",
                ["iam:PassRole"],
                task_roles,
                {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}},
            )
        )
    if repositories:
        statements.append(
            _statement("ReadTheConfiguredImageRepositories", ["ecr:DescribeImages"], repositories)
        )
    if templates:
        statements.append(
            _statement(
                "LaunchOnlyFromTheConfiguredTemplatesAndSubnets",
                ["ec2:RunInstances"],
                [*templates, *subnets],
            )
        )
        launched = sorted(
            {
                _arn(p, "ec2", env.region, env.account, f"{kind}/*")
                for env in facts
                if env.fleets
                for kind in (*_RUN_INSTANCES_ALSO, *(("subnet",) if unknown_subnets else ()))
            }
            | {_arn(p, "ec2", env.region, "", "image/*") for env in facts if env.fleets}
        )
        statements.append(
            _statement(
                "WhatALaunchFromThoseTemplatesCreatesAndUses",
                ["ec2:RunInstances"],
                launched,
                {"StringEquals": {"ec2:LaunchTemplate": _one_or_list(templates)}},
            )
        )
        created = [
            _arn(p, "ec2", env.region, env.account, f"{kind}/*")
            for env in facts
            if env.fleets
            for kind in ("instance", "volume", "network-interface")
        ]
        statements.append(
            _statement(
                "TagInstancesAtLaunchOnly",
                ["ec2:CreateTags"],
                created,
                {"StringEquals": {"ec2:CreateAction": "RunInstances"}},
            )
        )
        statements.append(
            _statement(
                "ChangeOnlyTheFleetsInstances",
                [
                    "ec2:ModifyInstanceAttribute",
                    "ec2:StartInstances",
                    "ec2:StopInstances",
                    "ec2:TerminateInstances",
                ],
                [
                    _arn(p, "ec2", env.region, env.account, "instance/*")
                    for env in facts
                    if env.fleets
                ],
                {
                    "StringEquals": {
                        f"aws:ResourceTag/{SERVICE_TAG}": _one_or_list(fleet_services),
                        f"aws:ResourceTag/{ENV_TAG}": _one_or_list(fleet_envs),
                    }
                },
            )
        )
        statements.append(
            _statement(
                "ScaleUpTheConfiguredTemplates",
                ["ec2:CreateLaunchTemplateVersion", "ec2:ModifyLaunchTemplate"],
                templates,
            )
        )
        statements.append(
            _statement(
                "AddAndRemoveTargetsOfTheConfiguredGroups",
                ["elasticloadbalancing:DeregisterTargets", "elasticloadbalancing:RegisterTargets"],
                target_groups,
            )
        )
    if instance_roles:
        statements.append(
            _statement(
                "PassOnlyTheInstanceRolesOfTheTemplates",
                ["iam:PassRole"],
                instance_roles,
                {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
            )
        )
    if groups:
        statements.append(
            _statement(
                "ScaleTheConfiguredAutoScalingGroups",
                ["autoscaling:UpdateAutoScalingGroup"],
                groups,
            )
        )
    statements.extend(_deploy_statements(facts, p))
    if clusters:
        statements.append(
            _statement("ReadTheConfiguredDatabaseClusters", ["rds:DescribeDBClusters"], clusters)
        )
    if instances:
        statements.append(
            _statement(
                "ReadAndResizeTheirInstances",
                ["rds:DescribeDBInstances", "rds:ModifyDBInstance"],
                instances,
            )
        )
    if secrets:
        statements.append(
            _statement(
                "ReadTheConfiguredDatabaseAdminSecrets", ["secretsmanager:GetSecretValue"], secrets
            )
        )
    if runtime is not None:
        statements.extend(runtime.statements(p))
    return {"Version": "2012-10-17", "Statement": statements}


def _deploy_statements(facts: Sequence[EnvFacts], p: str) -> list[dict[str, Any]]:
    """Fleets deploy through SSM Run Command on their own instances; Auto Scaling groups
    through a new launch template version and an instance refresh; events from the queue."""
    documents: list[str] = []
    fleet_instances = False
    parameters: list[str] = []
    refreshed: list[str] = []
    templates: list[str] = []
    for env in facts:
        a, r = env.account, env.region
        for document in env.documents:
            # AWS's own documents (AWS-RunShellScript) live in no account.
            owner = "" if document.startswith("AWS-") else a
            documents.append(_arn(p, "ssm", r, owner, f"document/{document}"))
        fleet_instances = fleet_instances or bool(env.documents)
        parameters.extend(_arn(p, "ssm", r, a, f"parameter/{path}") for path in env.parameters)
        refreshed.extend(
            _arn(p, "autoscaling", r, a, f"autoScalingGroup:*:autoScalingGroupName/{name}")
            for name in env.refreshed_groups
        )
        templates.extend(
            _arn(p, "ec2", r, a, f"launch-template/{t}") for t in env.refreshed_templates
        )
    out: list[dict[str, Any]] = []
    if documents:
        out.append(
            _statement(
                "RunTheFleetsDeployDocuments",
                ["ssm:SendCommand", "ssm:DescribeDocument"],
                sorted(set(documents)),
            )
        )
    if fleet_instances:
        out.append(
            _statement(
                "RunCommandsAndTagVersionsOnlyOnFleetInstances",
                ["ssm:SendCommand", "ec2:CreateTags"],
                [_arn(p, "ec2", "*", "*", "instance/*")],
                {"StringLike": {"aws:ResourceTag/kajitori:service": "*"}},
            )
        )
    if parameters:
        out.append(_statement("ReadTheAmiParameters", ["ssm:GetParameter"], sorted(parameters)))
    if refreshed:
        out.append(
            _statement(
                "RefreshTheConfiguredGroups",
                [
                    "autoscaling:StartInstanceRefresh",
                    "autoscaling:CancelInstanceRefresh",
                    "autoscaling:RollbackInstanceRefresh",
                ],
                sorted(set(refreshed)),
            )
        )
    if templates:
        out.append(
            _statement(
                "VersionTheGroupsLaunchTemplates",
                ["ec2:CreateLaunchTemplateVersion"],
                sorted(set(templates)),
            )
        )
    return out


@dataclass
class RuntimeFacts:
    """What kajitori needs in the account it runs in: its DynamoDB table (when the store is
    one) and the environments' roles to assume."""

    account: str
    table: tuple[str, str] | None  # (region, name)
    roles: list[str]
    # The SQS queues of AWS events kajitori long-polls (`events.queues`), as URLs.
    queues: list[str] = field(default_factory=list)

    def statements(self, partition: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        arns = [queue_arn(partition, url) for url in self.queues]
        if arns:
            # DeleteMessageBatch is authorized as sqs:DeleteMessage.
            out.append(
                _statement("ReadTheEventQueues", ["sqs:ReceiveMessage", "sqs:DeleteMessage"], arns)
            )
        if self.table is not None:
            region, name = self.table
            table = _arn(partition, "dynamodb", region, self.account, f"table/{name}")
            out.append(
                _statement(
                    "SharedStateForSeveralReplicas",
                    [
                        "dynamodb:BatchGetItem",
                        "dynamodb:DeleteItem",
                        "dynamodb:DescribeTable",
                        "dynamodb:GetItem",
                        "dynamodb:PutItem",
                        "dynamodb:Query",
                        "dynamodb:UpdateItem",
                    ],
                    [table, f"{table}/index/*"],
                )
            )
        if self.roles:
            out.append(_statement("AssumeTheEnvironmentsRoles", ["sts:AssumeRole"], self.roles))
        return out


def queue_arn(partition: str, url: str) -> str:
    """`https://sqs.REGION.amazonaws.com/ACCOUNT/NAME` as the queue's ARN."""
    host, _, path = url.split("://", 1)[-1].partition("/")
    region = host.split(".")[1] if host.startswith("sqs.") else "*"
    account, _, name = path.partition("/")
    return _arn(partition, "sqs", region, account, name)


def dynamodb_table(store: str, default_region: str) -> tuple[str, str] | None:
    """(region, table) of a `dynamodb://TABLE?region=R` store, None for any other."""
    if not store.startswith("dynamodb://"):
        return None
    url = urlparse(store)
    region = parse_qs(url.query).get("region", [default_region])[0]
    return region, url.netloc


def partition_of(facts: Sequence[EnvFacts]) -> str:
    for env in facts:
        match = _PARTITION.match(env.role_arn or "")
        if match:
            return match.group(1)
    return "aws"


def policies(
    config: Config, facts: Sequence[EnvFacts], runtime: RuntimeFacts | None
) -> dict[str, dict[str, Any]]:
    """One policy per account, keyed by account id."""
    by_account: dict[str, list[EnvFacts]] = {}
    for env in facts:
        by_account.setdefault(env.account, []).append(env)
    if runtime is not None:
        by_account.setdefault(runtime.account, [])
    partition = partition_of(facts)
    return {
        account: account_policy(
            envs,
            partition=partition,
            runtime=runtime if runtime is not None and runtime.account == account else None,
        )
        for account, envs in sorted(by_account.items())
    }


def cloudformation(
    policy: dict[str, Any], account: str, external_ids: Sequence[str]
) -> dict[str, Any]:
    """A template with a role that has `policy`, which the principal kajitori runs as (a
    parameter) may assume."""
    document = json.loads(json.dumps(policy).replace(account, "${AWS::AccountId}"))
    trust: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"AWS": {"Ref": "TrustedPrincipalArn"}},
        "Action": "sts:AssumeRole",
    }
    if external_ids:
        trust["Condition"] = {"StringEquals": {"sts:ExternalId": _one_or_list(external_ids)}}
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "The role kajitori assumes in this account, with the least privilege "
        "for what its config names (generated by `kajitori iam-policy`).",
        "Parameters": {
            "TrustedPrincipalArn": {
                "Type": "String",
                "Description": "The role kajitori runs as (its ECS task role, for one)",
                "AllowedPattern": "^arn:aws[a-z-]*:iam::[0-9]{12}:(role|user)/.+$",
            },
            "RoleName": {"Type": "String", "Default": "kajitori"},
        },
        "Resources": {
            "KajitoriPolicy": {
                "Type": "AWS::IAM::ManagedPolicy",
                "Properties": {
                    "Description": "What kajitori may do in this account",
                    "PolicyDocument": _substitute(document),
                },
            },
            "KajitoriRole": {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "RoleName": {"Ref": "RoleName"},
                    "AssumeRolePolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [trust],
                    },
                    "ManagedPolicyArns": [{"Ref": "KajitoriPolicy"}],
                    "MaxSessionDuration": 43200,
                },
            },
        },
        "Outputs": {
            "RoleArn": {"Value": {"Fn::GetAtt": ["KajitoriRole", "Arn"]}},
            "PolicyArn": {"Value": {"Ref": "KajitoriPolicy"}},
        },
    }


def _substitute(value: Any) -> Any:
    """Strings that name `${AWS::AccountId}` become `Fn::Sub`s."""
    if isinstance(value, str):
        return {"Fn::Sub": value} if "${AWS::AccountId}" in value else value
    if isinstance(value, list):
        return [_substitute(v) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v) for k, v in value.items()}
    return value
