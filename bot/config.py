"""The configuration file (YAML) as pydantic models, and the secrets from the environment."""

from __future__ import annotations

import difflib
import os
import re
import types
import typing
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ByteSize,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    SecretStr,
    Tag,
    ValidationError,
    model_validator,
)

from bot.errors import ConfigError, unknown_name
from bot.grammar import parse_duration


def _duration(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return parse_duration(value)
        except Exception as error:
            raise ValueError(str(error)) from None
    if isinstance(value, int | float):
        return timedelta(seconds=value)
    return value


Duration = Annotated[timedelta, BeforeValidator(_duration)]
_SIZE = re.compile(r"\d+(\.\d+)?\s*([KMG]i?B|B)?", re.IGNORECASE)


def _size(value: Any) -> Any:
    if isinstance(value, int | float) and value <= 0:
        raise ValueError(f"expected a size greater than 0 bytes, not {value}")
    if isinstance(value, str) and not _SIZE.fullmatch(value.strip()):
        raise ValueError(f"expected a size such as 10MB, 64KiB or 1000 (bytes), not {value!r}")
    return value


# A size in bytes: a number, or a number with a unit (64KB = 64,000, 64KiB = 65,536).
Bytes = Annotated[ByteSize, BeforeValidator(_size), Field(gt=0)]


class Strict(BaseModel):
    # Validators are built when the config is first read, once for the whole tree (the
    # models' own are built if one is validated alone), not for each model as this loads.
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class EcsTarget(Strict):
    cluster: str
    service: str
    container: str
    # ECR repository of the container's image; by default read from the image URI.
    repository: str | None = None
    # Roles a new task definition revision may run as, besides those of the current one
    # (`kajitori iam-policy` allows passing exactly these to ECS).
    pass_roles: list[str] = Field(default_factory=list)


class FleetTarget(Strict):
    """EC2 instances without Auto Scaling, launched from a launch template."""

    launch_template: str
    target_group: str
    subnets: list[str] = Field(default_factory=list)
    max_instances: int = 20
    # The role of the launch template's instance profile (`kajitori iam-policy` allows
    # passing exactly these to EC2).
    pass_roles: list[str] = Field(default_factory=list)


class AsgTarget(Strict):
    name: str
    # Allow `scale out` past the group's max by raising max.
    raise_max: bool = False


def _bake(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lower() == "manual":
        return None
    return _duration(value)


class Canary(Strict):
    """The first batch of a fleet deploy, watched before the rest: for `bake`, or until a
    `promote JOB` / `abort JOB` when `bake: manual`."""

    instances: int = Field(default=1, ge=1)
    # None: wait for a person (`bake: manual`).
    bake: Annotated[timedelta | None, BeforeValidator(_bake)] = timedelta(minutes=5)


def _batch(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise ValueError("a batch is a number of instances (2) or a percentage (25%)")
    text = value.strip()
    number = text.removesuffix("%")
    if not number.isdigit() or int(number) < 1 or (text.endswith("%") and int(number) > 100):
        raise ValueError(
            f"bad batch {value!r}: a number of instances (2) or a percentage from 1% to 100%"
        )
    return text


class FleetDeploy(Strict):
    """How a fleet (`fleet:`) deploys: an SSM Run Command document run on each instance."""

    ssm_document: str = "AWS-RunShellScript"
    # `AWS-RunShellScript`: the shell command, with `{version}` in it. Another document gets
    # the version as its `version` parameter, and `command` may stay empty.
    command: str | None = None
    batch: Annotated[str, BeforeValidator(_batch)] = "1"
    canary: Canary | None = None
    # How long one instance's command may run.
    command_timeout: Duration = timedelta(minutes=10)

    @model_validator(mode="after")
    def _command(self) -> FleetDeploy:
        if self.ssm_document == "AWS-RunShellScript":
            if not self.command:
                raise ValueError(
                    "`command` is needed with AWS-RunShellScript, like /opt/app/deploy.sh {version}"
                )
            if "{version}" not in self.command:
                raise ValueError("`command` must contain {version}")
        return self

    def batch_size(self, instances: int) -> int:
        """Instances per batch for a fleet of `instances`: at least 1."""
        if self.batch.endswith("%"):
            return max(1, instances * int(self.batch[:-1]) // 100)
        return max(1, int(self.batch))


# Auto Scaling's upper bound for CheckpointDelay (172,800 seconds).
MAX_CHECKPOINT_DELAY = timedelta(days=2)


class AsgDeploy(Strict):
    """How an Auto Scaling group (`asg:`) deploys: a launch template version, then an
    instance refresh. The version goes to exactly one of the three places."""

    image_parameter: str | None = None  # SSM parameter holding the AMI id: /app/ami/{version}
    image_name_pattern: str | None = None  # AMI name: app-{version}-*
    user_data_variable: str | None = None  # APP_VERSION=... in the template's user data
    checkpoints: list[Annotated[int, Field(ge=1, le=99)]] = Field(default_factory=list)
    # How long the refresh waits at each checkpoint (`promote JOB` ends the wait early);
    # None (`manual`): until a person says `promote JOB` or `abort JOB`.
    checkpoint_delay: Annotated[timedelta | None, BeforeValidator(_bake)] = timedelta(minutes=5)
    min_healthy_percentage: int = Field(default=90, ge=0, le=100)
    auto_rollback: bool = True
    instance_warmup: Duration | None = None

    @model_validator(mode="after")
    def _one_place(self) -> AsgDeploy:
        places = [
            p
            for p in ("image_parameter", "image_name_pattern", "user_data_variable")
            if getattr(self, p)
        ]
        if len(places) != 1:
            raise ValueError(
                "an asg deploy names exactly one of image_parameter, image_name_pattern "
                "or user_data_variable"
            )
        for place in ("image_parameter", "image_name_pattern"):
            value = getattr(self, place)
            if value and "{version}" not in value:
                raise ValueError(f"`{place}` must contain {{version}}")
        if self.checkpoints != sorted(set(self.checkpoints)):
            raise ValueError("checkpoints must rise, like [10, 50]")
        delay = self.checkpoint_delay
        if delay is not None and delay > MAX_CHECKPOINT_DELAY:
            raise ValueError(
                "checkpoint_delay is at most 2 days (Auto Scaling's limit); "
                "`manual` waits for `promote JOB`"
            )
        return self


_ASG_DEPLOY_KEYS = frozenset(AsgDeploy.model_fields) - frozenset(FleetDeploy.model_fields)


def _deploy_block_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "asg" if _ASG_DEPLOY_KEYS & set(value) else "fleet"
    return "asg" if isinstance(value, AsgDeploy) else "fleet"


DeployBlock = Annotated[
    Annotated[FleetDeploy, Tag("fleet")] | Annotated[AsgDeploy, Tag("asg")],
    Discriminator(_deploy_block_kind),
]


class Service(Strict):
    ecs: EcsTarget | None = None
    fleet: FleetTarget | None = None
    asg: AsgTarget | None = None
    timeout: Duration = timedelta(minutes=15)
    # How `deploy` changes a fleet or an Auto Scaling group (ECS services need none).
    deploy: DeployBlock | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Service:
        kinds = [k for k in ("ecs", "fleet", "asg") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError("a service is exactly one of ecs, fleet or asg")
        if self.deploy is not None and self.ecs is not None:
            raise ValueError("`deploy` is for fleet and asg services; ECS deploys need none")
        if isinstance(self.deploy, AsgDeploy) and self.fleet is not None:
            raise ValueError(
                "deploy: a fleet deploys with ssm_document, command, batch and canary "
                "(image_parameter, checkpoints and the like are for asg services)"
            )
        if isinstance(self.deploy, FleetDeploy) and self.asg is not None:
            raise ValueError(
                "deploy: an asg deploys with one of image_parameter, image_name_pattern or "
                "user_data_variable (ssm_document, command, batch and canary are for fleets)"
            )
        return self

    @property
    def fleet_deploy(self) -> FleetDeploy | None:
        return self.deploy if isinstance(self.deploy, FleetDeploy) else None

    @property
    def asg_deploy(self) -> AsgDeploy | None:
        return self.deploy if isinstance(self.deploy, AsgDeploy) else None

    @property
    def kind(self) -> Literal["ecs", "fleet", "asg"]:
        if self.ecs is not None:
            return "ecs"
        return "fleet" if self.fleet is not None else "asg"


class Bastion(Strict):
    host: str
    port: int = 22
    user: str
    key_file: str
    known_hosts: str


class Database(Strict):
    engine: Literal["mysql"] = "mysql"
    reader: str
    port: int = 3306
    database: str
    # Used only to create and drop temporary users: a Secrets Manager ARN or name,
    # or `env:NAME` for a JSON secret in the environment variable NAME.
    admin_secret: str
    bastion: Bastion
    # Address the database is reached at from the bastion, if not `reader` (a test bastion
    # on loopback reaches MariaDB at 127.0.0.1).
    connect_host: str | None = None
    bind: str = "127.0.0.1"
    cluster: str | None = None  # the Aurora cluster, for `scale up`
    default_session: Duration = timedelta(minutes=30)
    max_session: Duration = timedelta(hours=2)
    statement_timeout: Duration = timedelta(seconds=30)
    row_limit: int = 1000
    # Bytes `sql` keeps of one result, counted as rows stream in (10MB, 64KiB, or a number).
    max_result_bytes: Bytes = ByteSize(10_000_000)
    # A longer cell is cut to this and shown ending in "…".
    max_cell_bytes: Bytes = ByteSize(64_000)

    @model_validator(mode="after")
    def _cell_within_result(self) -> Database:
        if self.max_cell_bytes > self.max_result_bytes:
            raise ValueError(
                f"max_cell_bytes ({self.max_cell_bytes}) must not be larger than "
                f"max_result_bytes ({self.max_result_bytes})"
            )
        return self


_ROLE_ARN = re.compile(r"^arn:aws(?:-[a-z]+)*:iam::(\d{12}):role/[\w+=,.@/-]{1,512}$")
_SESSION_NAME = re.compile(r"^[\w+=,.@-]{2,64}$")
_EXTERNAL_ID = re.compile(r"^[\w+=,.@:/-]{2,1224}$")


class EnvironmentAws(Strict):
    """The role kajitori assumes for one environment (its own account, as a rule), on top
    of the credentials it runs with (task role, IRSA, profile, environment variables)."""

    role_arn: str
    external_id: str | None = None
    session_name: str = "kajitori"
    # The account the role must land in; by default the role ARN's.
    account_id: str | None = None

    @model_validator(mode="after")
    def _valid(self) -> EnvironmentAws:
        match = _ROLE_ARN.match(self.role_arn)
        if match is None:
            raise ValueError(
                f"role_arn {self.role_arn!r} is not an IAM role ARN "
                "(arn:aws:iam::123456789012:role/NAME)"
            )
        if self.account_id is not None and not re.fullmatch(r"\d{12}", self.account_id):
            raise ValueError(f"account_id {self.account_id!r} is not a 12-digit AWS account id")
        if self.account_id is not None and self.account_id != match.group(1):
            raise ValueError(
                f"account_id {self.account_id} is not the account of role_arn ({match.group(1)})"
            )
        if not _SESSION_NAME.match(self.session_name):
            raise ValueError("session_name must be 2 to 64 letters, digits or any of _+=,.@-")
        if self.external_id is not None and not _EXTERNAL_ID.match(self.external_id):
            raise ValueError("external_id must be 2 to 1224 letters, digits or any of _+=,.@:/-")
        return self

    @property
    def account(self) -> str:
        """The account the role belongs to."""
        match = _ROLE_ARN.match(self.role_arn)
        assert match is not None  # checked at validation
        return match.group(1)


@dataclass(frozen=True)
class AwsScope:
    """Where an AWS call goes: the environment (whose role gives the account) and the
    region. `env` None: the credentials kajitori runs with."""

    env: str | None
    region: str

    def in_region(self, region: str) -> AwsScope:
        return AwsScope(self.env, region)

    def __str__(self) -> str:
        # What a person reads as "where": the region (the account is said where it matters).
        return self.region


class Environment(Strict):
    region: str
    protected: bool = False
    aws: EnvironmentAws | None = None
    # Where this environment's AWS events and alarms are posted (`slack:C0PROD`).
    channel: str | None = None
    # Other names for it in commands (`prod`, `本番`); names and aliases match in any case.
    aliases: list[str] = Field(default_factory=list)
    services: dict[str, Service] = Field(default_factory=dict)
    databases: dict[str, Database] = Field(default_factory=dict)
    _name: str | None = PrivateAttr(default=None)

    @property
    def name(self) -> str | None:
        return self._name

    @property
    def scope(self) -> AwsScope:
        """Where this environment's AWS calls go."""
        return AwsScope(self._name, self.region)


class Access(Strict):
    roles: dict[str, list[str]] = Field(default_factory=dict)
    # A person and all their ids: `alice: [slack:U012ABC, typetalk:12345, local:alice]`.
    people: dict[str, list[str]] = Field(default_factory=dict)
    # Roles by person or by id.
    members: dict[str, list[str]] = Field(default_factory=dict)
    # Where commands are accepted; the shell (`local`) is always allowed.
    channels: list[str] = Field(default_factory=list)


class Approvals(Strict):
    approvers: list[str] = Field(default_factory=lambda: ["sre"])
    expiry: Duration = timedelta(minutes=30)


class Locks(Strict):
    lease: Duration = timedelta(hours=4)  # a manual `lock`


class Jobs(Strict):
    """Durable jobs: a running job's replica renews its lease every quarter of `lease` (and
    its locks, whose lease is twice as long, every half); once a lease has run out, another
    replica takes the job over, looking for such jobs every `takeover_interval`."""

    lease: Duration = timedelta(minutes=2)
    takeover_interval: Duration = timedelta(seconds=10)

    @model_validator(mode="after")
    def _takeover_before_locks_end(self) -> Jobs:
        # A dead replica's locks last at least one and a half leases; its jobs' leases at
        # most one: the takeover pass must come within the half lease between.
        if self.takeover_interval >= self.lease / 2:
            raise ValueError(
                f"`takeover_interval` must be under half of `lease` ({self.lease / 2}), so "
                "that a stopped replica's jobs are taken over before their locks run out; "
                "shorten it or lengthen `lease`"
            )
        return self


class AwsConfig(Strict):
    """botocore's retries for every AWS client (the DynamoDB store's too), and how long
    the credentials of an environment's role last and how early they are renewed."""

    retry_mode: Literal["standard", "adaptive"] = "standard"
    max_attempts: int = Field(default=5, ge=1, le=20)
    session_duration: Duration = timedelta(hours=1)
    refresh_margin: Duration = timedelta(minutes=15)

    @model_validator(mode="after")
    def _valid(self) -> AwsConfig:
        seconds = self.session_duration.total_seconds()
        if not 900 <= seconds <= 43200:
            raise ValueError("session_duration must be between 15m and 12h (AWS's limits)")
        if not timedelta(0) < self.refresh_margin < self.session_duration:
            raise ValueError("refresh_margin must be above 0 and below session_duration")
        return self


class SlackConfig(Strict):
    command: str = "/ops"
    # Slack's pace: chat.postMessage about once a second per channel with short bursts, and
    # chat.update about 50 a minute per workspace (Tier 3). kajitori keeps within them.
    post_rate: float = Field(default=1.0, gt=0)  # posts per second per channel
    post_burst: int = Field(default=3, ge=1)
    updates_per_minute: float = Field(default=50.0, gt=0)


class TypetalkConfig(Strict):
    bot: str = "kajitori"


class GithubTrigger(Strict):
    repo: str
    on: Literal["push", "release"]
    branch: str | None = None
    tag: str | None = None
    version: Literal["tag", "sha"] = "tag"


class DeployTarget(Strict):
    service: str
    env: str


class Trigger(Strict):
    github: GithubTrigger | None = None
    ci: str | None = None
    deploy: DeployTarget
    channels: list[str] = Field(default_factory=list)
    roles: list[str] = Field(default_factory=lambda: ["deployer"])
    # Deploy on a protected environment without waiting for a human's approval.
    approved: bool = False

    @model_validator(mode="after")
    def _one_source(self) -> Trigger:
        if (self.github is None) == (self.ci is None):
            raise ValueError("a trigger is exactly one of github or ci")
        return self

    @property
    def member(self) -> str:
        return f"github:{self.github.repo}" if self.github else f"ci:{self.ci}"


class QuotaWatch(Strict):
    interval: Duration = timedelta(minutes=15)
    channels: list[str] = Field(default_factory=list)
    thresholds: list[int] = Field(default_factory=lambda: [80, 90, 100])


class ServerLimits(Strict):
    """`server:` what one client may take of `kajitori serve`, so slow or hostile clients
    cannot starve the others (health checks, Slack's 3-second acknowledgements)."""

    # Beyond this, a new connection closes the oldest one that has not sent a whole request.
    max_connections: int = Field(default=1024, ge=8, le=65536)
    # To send a request's line and headers; also how long an idle keep-alive connection stays.
    header_timeout: Duration = timedelta(seconds=10)
    # To send a body, once the headers are in.
    body_timeout: Duration = timedelta(seconds=20)
    # Largest body accepted on the Slack, Typetalk and webhook endpoints (others take none).
    max_body_bytes: int = Field(default=1024 * 1024, ge=64 * 1024, le=64 * 1024 * 1024)


class Remediation(Strict):
    """Commands offered as buttons on an alarm's message (or on events matching `event`)."""

    alarm: str | None = None  # a CloudWatch alarm name; `*` and `?` match any characters
    event: str | None = None  # a detail-type, like `ECS Deployment State Change`
    suggest: list[str] = Field(min_length=1, max_length=5)

    @model_validator(mode="after")
    def _one_match(self) -> Remediation:
        if (self.alarm is None) == (self.event is None):
            raise ValueError("a remediation matches exactly one of alarm or event")
        return self


class EventRateLimit(Strict):
    posts: int = Field(default=10, ge=1)
    per: Duration = timedelta(minutes=1)


class SnsIntake(Strict):
    """`POST /webhooks/sns`: the topics whose notifications are accepted."""

    topics: list[str] = Field(min_length=1)
    # Certificates known ahead, by their SigningCertURL (which must still be on
    # sns.<region>.amazonaws.com): a PEM file used instead of fetching the URL.
    certificates: dict[str, str] = Field(default_factory=dict)


class EventsConfig(Strict):
    """AWS events and alarms into chat, through SQS queues an EventBridge rule feeds."""

    queues: list[str] = Field(default_factory=list)
    # Where events of no environment go (and every environment without `channel`).
    default_channel: str | None = None
    # Events dropped without a word: a detail-type, `source/detail-type`, or an alarm name;
    # `*` and `?` match any characters.
    ignore: list[str] = Field(default_factory=list)
    remediate: list[Remediation] = Field(default_factory=list)
    rate_limit: EventRateLimit = EventRateLimit()
    # An alarm that comes back within this time after it last changed is flapping: its
    # message is edited with a counter instead of posting again.
    flap_window: Duration = timedelta(minutes=30)
    wait: Duration = timedelta(seconds=20)  # SQS long-poll wait (at most 20s)
    visibility_timeout: Duration = timedelta(seconds=60)
    sns: SnsIntake | None = None


class Config(Strict):
    slack: SlackConfig = SlackConfig()
    typetalk: TypetalkConfig = TypetalkConfig()
    store: str = "sqlite:///var/lib/kajitori/state.db"
    environments: dict[str, Environment]
    access: Access = Access()
    approvals: Approvals = Approvals()
    locks: Locks = Locks()
    jobs: Jobs = Jobs()
    aws: AwsConfig = AwsConfig()
    triggers: list[Trigger] = Field(default_factory=list)
    quota_watch: QuotaWatch | None = None
    server: ServerLimits = ServerLimits()

    @model_validator(mode="after")
    def _name_environments(self) -> Config:
        for name, env in self.environments.items():
            env._name = name
        return self

    def scope(self, env: str) -> AwsScope:
        return self.environment(env).scope

    events: EventsConfig | None = None

    def environment_name(self, name: str) -> str:
        """The environment `name` stands for: itself, in any case, or one of its aliases."""
        if name in self.environments:
            return name
        folded = name.casefold()
        for env_name, env in self.environments.items():
            if folded == env_name.casefold() or folded in (a.casefold() for a in env.aliases):
                return env_name
        known = [
            f"{n} (aliases: {', '.join(e.aliases)})" if e.aliases else n
            for n, e in self.environments.items()
        ]
        aliases = [a for e in self.environments.values() for a in e.aliases]
        raise unknown_name("environment", name, known, also=aliases)

    def environment(self, name: str) -> Environment:
        return self.environments[self.environment_name(name)]

    def service_name(self, name: str, env: str) -> str:
        """The service `name` stands for in `env`, in any case."""
        env_name = self.environment_name(env)
        return _find_name("service", name, list(self.environments[env_name].services), env_name)

    def service(self, name: str, env: str) -> Service:
        env_name = self.environment_name(env)
        return self.environments[env_name].services[self.service_name(name, env_name)]

    def database_name(self, name: str, env: str) -> str:
        env_name = self.environment_name(env)
        return _find_name("database", name, list(self.environments[env_name].databases), env_name)

    def database(self, name: str, env: str) -> Database:
        env_name = self.environment_name(env)
        return self.environments[env_name].databases[self.database_name(name, env_name)]


def _find_name(kind: str, name: str, known: list[str], env: str) -> str:
    if name in known:
        return name
    found = next((k for k in known if k.casefold() == name.casefold()), None)
    if found is None:
        raise unknown_name(kind, name, known, where=env)
    return found


def _same_names(where: str, names: list[str]) -> list[str]:
    """Names that only differ in case cannot be told apart by case-insensitive lookups."""
    seen: dict[str, str] = {}
    errors = []
    for name in names:
        other = seen.setdefault(name.casefold(), name)
        if other != name:
            errors.append(f"{where}.{name}: differs from {other!r} only in case")
    return errors


def _alias_checks(config: Config) -> list[str]:
    errors = _same_names("environments", list(config.environments))
    owner = {name.casefold(): f"environment {name!r}" for name in config.environments}
    for env_name, env in config.environments.items():
        errors.extend(_same_names(f"environments.{env_name}.services", list(env.services)))
        errors.extend(_same_names(f"environments.{env_name}.databases", list(env.databases)))
        for i, alias in enumerate(env.aliases):
            path = f"environments.{env_name}.aliases.{i}"
            if not alias or any(c.isspace() for c in alias) or alias.startswith("-"):
                errors.append(f"{path}: {alias!r} is not one word (no spaces, no leading -)")
                continue
            mine = f"an alias of {env_name!r}"
            taken = owner.setdefault(alias.casefold(), mine)
            earlier = [a.casefold() for a in env.aliases[:i]]
            if taken != mine or alias.casefold() in earlier:
                errors.append(f"{path}: {alias!r} is already {taken}")
    return errors


def _cross_checks(config: Config) -> list[str]:
    errors: list[str] = _alias_checks(config)
    roles = set(config.access.roles)
    people = config.access.people
    listed: dict[str, str] = {}
    for person, ids in people.items():
        if ":" in person:
            errors.append(
                f"access.people.{person}: a person is a name without ':' (like alice); "
                "their ids (ADAPTER:ID) are the list"
            )
        for member in ids:
            if ":" not in member:
                errors.append(
                    f"access.people.{person}: {member!r} is not a member id (ADAPTER:ID, "
                    "like slack:U012ABC)"
                )
            elif member in listed and listed[member] != person:
                errors.append(
                    f"access.people.{person}: {member} is already listed under "
                    f"{listed[member]}; an id belongs to one person"
                )
            listed.setdefault(member, person)
    for member, member_roles in config.access.members.items():
        if ":" not in member and member not in people:
            errors.append(
                f"access.members.{member}: neither a member id (ADAPTER:ID, like "
                "slack:U012ABC) nor a person of access.people"
            )
        errors.extend(
            f"access.members.{member}: unknown role {role!r}"
            for role in member_roles
            if role not in roles
        )
    errors.extend(
        f"approvals.approvers: unknown role {role!r}"
        for role in config.approvals.approvers
        if role not in roles
    )
    for i, trigger in enumerate(config.triggers):
        target = trigger.deploy
        env = config.environments.get(target.env)
        if env is None:
            errors.append(f"triggers.{i}.deploy.env: unknown environment {target.env!r}")
        elif target.service not in env.services:
            errors.append(f"triggers.{i}.deploy.service: unknown service {target.service!r}")
        errors.extend(
            f"triggers.{i}.roles: unknown role {role!r}"
            for role in trigger.roles
            if role not in roles
        )
    errors.extend(_event_checks(config))
    return errors


def _channel_problem(channel: str) -> str | None:
    if channel.startswith(("slack:", "typetalk:topic/", "local")):
        return None
    return f"{channel!r} is not a channel (slack:C0123, typetalk:topic/42 or local)"


def _event_checks(config: Config) -> list[str]:
    errors: list[str] = []
    for name, env in config.environments.items():
        if env.channel is not None and (problem := _channel_problem(env.channel)):
            errors.append(f"environments.{name}.channel: {problem}")
    events = config.events
    if events is None:
        return errors
    if events.default_channel is not None and (problem := _channel_problem(events.default_channel)):
        errors.append(f"events.default_channel: {problem}")
    for i, url in enumerate(events.queues):
        if not url.startswith(("https://", "http://")) or url.count("/") < 4:
            errors.append(
                f"events.queues.{i}: {url!r} is not a queue URL "
                "(https://sqs.REGION.amazonaws.com/ACCOUNT/NAME)"
            )
    if events.wait > timedelta(seconds=20):
        errors.append("events.wait: SQS waits at most 20s")
    if events.sns is not None:
        for j, topic in enumerate(events.sns.topics):
            if not topic.startswith("arn:aws") or topic.count(":") != 5:
                errors.append(f"events.sns.topics.{j}: {topic!r} is not a topic ARN")
        for url, path in events.sns.certificates.items():
            if not Path(path).is_file():
                errors.append(f"events.sns.certificates.{url}: no file {path}")
    for i, remedy in enumerate(events.remediate):
        for j, command in enumerate(remedy.suggest):
            if not command.strip():
                errors.append(f"events.remediate.{i}.suggest.{j}: empty command")
    return errors


def _format(error: Any, model: type[BaseModel]) -> str:
    loc = [str(part) for part in error["loc"]]
    path = ".".join(loc)
    if error["type"] == "missing":
        return f"{path}: field required"
    if error["type"] == "extra_forbidden":
        parent_fields = _fields_at(model, error["loc"][:-1])
        close = difflib.get_close_matches(loc[-1], parent_fields, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"{path}: unknown key{hint}"
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{path}: {message[0].lower() + message[1:] if message else message}"


def _fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The keys known at `loc`, following models, dicts and lists (for 'did you mean')."""
    annotation: Any = model
    for part in loc:
        annotation = _unwrap(annotation)
        origin = typing.get_origin(annotation)
        if origin is dict:
            annotation = typing.get_args(annotation)[1]
        elif origin is list:
            annotation = typing.get_args(annotation)[0]
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field_info = annotation.model_fields.get(str(part))
            if field_info is None:
                return []
            annotation = field_info.annotation
        else:
            return []
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return list(annotation.model_fields)
    return []


def _unwrap(annotation: Any) -> Any:
    """`X | None` -> `X`."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        return args[0]
    return annotation


def parse_config(data: Any) -> Config:
    if not isinstance(data, dict):
        raise ConfigError(["(top level): expected a mapping of keys"])
    try:
        config = Config.model_validate(data)
    except ValidationError as error:
        raise ConfigError([_format(e, Config) for e in error.errors()]) from None
    problems = _cross_checks(config)
    if problems:
        raise ConfigError(problems)
    return config


# PyYAML's safe loader with its parser in C (libyaml) where PyYAML was built with it: the
# same documents and errors, read ~6× faster (a `kajitori run` reads the config first).
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_config(path: str | Path) -> Config:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise ConfigError([f"{path}: cannot read ({error.strerror})"]) from None
    try:
        data = yaml.load(text, Loader=_YAML_LOADER)
    except yaml.YAMLError as error:
        raise ConfigError([f"{path}: not valid YAML: {error}"]) from None
    return parse_config(data)


def default_config_path() -> str:
    return os.environ.get("KAJITORI_CONFIG", "kajitori.yaml")


class Settings(BaseModel):
    """Secrets and endpoints from the environment; never in the config file.

    Each field is read from the environment variable of its name in any case
    (`SLACK_BOT_TOKEN`); a value given as an argument wins over the environment."""

    model_config = ConfigDict(extra="ignore")

    slack_signing_secret: SecretStr | None = None
    slack_bot_token: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"
    typetalk_token: SecretStr | None = None
    typetalk_api_url: str = "https://typetalk.com"
    typetalk_webhook_secret: SecretStr | None = None
    github_webhook_secret: SecretStr | None = None
    aws_endpoint_url: str | None = None
    aws_region: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_environment(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        environment = {name.lower(): value for name, value in os.environ.items()}
        found = {name: environment[name] for name in cls.model_fields if name in environment}
        return {**found, **data}

    def ci_secret(self, name: str) -> SecretStr | None:
        value = os.environ.get(f"KAJITORI_CI_SECRET_{name.upper().replace('-', '_')}")
        return SecretStr(value) if value else None

    def secret_values(self) -> list[str]:
        """Every secret value known, so that redaction can remove them from any text."""
        values = [
            s.get_secret_value()
            for s in (
                self.slack_signing_secret,
                self.slack_bot_token,
                self.slack_app_token,
                self.typetalk_token,
                self.typetalk_webhook_secret,
                self.github_webhook_secret,
            )
            if s is not None
        ]
        values.extend(v for k, v in os.environ.items() if k.startswith("KAJITORI_CI_SECRET_") and v)
        # AWS credentials given in the environment (not the access key id: it is no secret
        # on its own, and a pattern masks real ones). Real ones are 40 characters and more;
        # an emulator's dummy values (`testing`) are left alone rather than masked everywhere.
        values.extend(
            v
            for k in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
            if len(v := os.environ.get(k, "")) >= 16
        )
        return [v for v in values if len(v) >= 6]
