"""The configuration file (YAML) as pydantic models, and the secrets from the environment."""

from __future__ import annotations

import difflib
import os
import types
import typing
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

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


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EcsTarget(Strict):
    cluster: str
    service: str
    container: str
    # ECR repository of the container's image; by default read from the image URI.
    repository: str | None = None


class FleetTarget(Strict):
    """EC2 instances without Auto Scaling, launched from a launch template."""

    launch_template: str
    target_group: str
    subnets: list[str] = Field(default_factory=list)
    max_instances: int = 20


class AsgTarget(Strict):
    name: str
    # Allow `scale out` past the group's max by raising max.
    raise_max: bool = False


class Service(Strict):
    ecs: EcsTarget | None = None
    fleet: FleetTarget | None = None
    asg: AsgTarget | None = None
    timeout: Duration = timedelta(minutes=15)

    @model_validator(mode="after")
    def _one_kind(self) -> Service:
        kinds = [k for k in ("ecs", "fleet", "asg") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError("a service is exactly one of ecs, fleet or asg")
        return self

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


class Environment(Strict):
    region: str
    protected: bool = False
    # Other names for it in commands (`prod`, `本番`); names and aliases match in any case.
    aliases: list[str] = Field(default_factory=list)
    services: dict[str, Service] = Field(default_factory=dict)
    databases: dict[str, Database] = Field(default_factory=dict)


class Access(Strict):
    roles: dict[str, list[str]] = Field(default_factory=dict)
    members: dict[str, list[str]] = Field(default_factory=dict)
    # Where commands are accepted; the shell (`local`) is always allowed.
    channels: list[str] = Field(default_factory=list)


class Approvals(Strict):
    approvers: list[str] = Field(default_factory=lambda: ["sre"])
    expiry: Duration = timedelta(minutes=30)


class Locks(Strict):
    lease: Duration = timedelta(hours=4)  # a manual `lock`


class Jobs(Strict):
    """Durable jobs: a running job's replica renews its lease (and its locks) every quarter
    of `lease`; once a lease has run out, another replica takes the job over, looking for
    such jobs every `takeover_interval`."""

    lease: Duration = timedelta(minutes=2)
    takeover_interval: Duration = timedelta(seconds=10)


class AwsConfig(Strict):
    """botocore's retries for every AWS client (the DynamoDB store's too)."""

    retry_mode: Literal["standard", "adaptive"] = "standard"
    max_attempts: int = Field(default=5, ge=1, le=20)


class SlackConfig(Strict):
    command: str = "/ops"


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
    for member, member_roles in config.access.members.items():
        if ":" not in member:
            errors.append(f"access.members.{member}: a member id is ADAPTER:ID, like slack:U012ABC")
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


def load_config(path: str | Path) -> Config:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise ConfigError([f"{path}: cannot read ({error.strerror})"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError([f"{path}: not valid YAML: {error}"]) from None
    return parse_config(data)


def default_config_path() -> str:
    return os.environ.get("KAJITORI_CONFIG", "kajitori.yaml")


class Settings(BaseSettings):
    """Secrets and endpoints from the environment; never in the config file."""

    model_config = SettingsConfigDict(extra="ignore")

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
        return [v for v in values if len(v) >= 6]
