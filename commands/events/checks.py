"""What `check-config` says about the events section beyond its shape: every suggested
command must be one kajitori understands, naming a known environment and service."""

from __future__ import annotations

from bot.config import Config
from bot.errors import UsageError
from bot.spec import Registry


def suggestion_problems(config: Config, registry: Registry) -> list[str]:
    problems: list[str] = []
    if config.events is None:
        return problems
    for i, remedy in enumerate(config.events.remediate):
        for j, command in enumerate(remedy.suggest):
            where = f"events.remediate.{i}.suggest.{j}"
            try:
                parsed = registry.parse(command)
            except UsageError as error:
                problems.append(f"{where}: `{command}`: {error.message}")
                continue
            env = parsed.env
            if env is not None and env not in config.environments:
                problems.append(f"{where}: `{command}`: unknown environment {env!r}")
                continue
            service = parsed.optional_word("service")
            if env is not None and service is not None:
                services = config.environments[env].services
                if service not in services:
                    problems.append(f"{where}: `{command}`: unknown service {service!r} in {env}")
    return problems
