"""Who may run what, where: roles with `command:env` permissions, and the channel allowlist.

A permission is `COMMAND[:ENV]`, each part a glob: `*`, `deploy:staging`, `db:*`, `status`
(any environment). A command that names no environment needs `COMMAND` or `COMMAND:*`.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

from bot.config import Config
from bot.errors import Refused

LOCAL_CHANNEL = "local"


def permission_allows(pattern: str, command: str, env: str | None) -> bool:
    cmd_pattern, _, env_pattern = pattern.partition(":")
    if not fnmatchcase(command, cmd_pattern):
        return False
    if not env_pattern:
        return True
    if env is None:
        return env_pattern == "*"
    return fnmatchcase(env, env_pattern)


@dataclass(frozen=True)
class AccessRules:
    config: Config

    def roles_of(self, member: str) -> list[str]:
        roles = list(self.config.access.members.get(member, []))
        roles.extend(role for t in self.config.triggers if t.member == member for role in t.roles)
        return roles

    def is_member(self, member: str) -> bool:
        return bool(self.roles_of(member))

    def allows(self, member: str, permission: str, env: str | None) -> bool:
        roles = self.config.access.roles
        return any(
            permission_allows(pattern, permission, env)
            for role in self.roles_of(member)
            for pattern in roles.get(role, [])
        )

    def is_approver(self, member: str) -> bool:
        return any(role in self.config.approvals.approvers for role in self.roles_of(member))

    def check_member(self, member: str) -> None:
        if not self.is_member(member):
            raise Refused(
                f"{member} is not a member of this bot",
                hint="ask an admin to add you under access.members in the config",
            )

    def check_permission(self, member: str, permission: str, env: str | None) -> None:
        if not self.allows(member, permission, env):
            needed = f"{permission}:{env}" if env else permission
            roles = ", ".join(self.roles_of(member)) or "none"
            raise Refused(
                f"{member} lacks permission {needed} (roles: {roles})",
                hint="ask an sre to run it, or to grant a role with that permission",
            )

    def check_channel(self, channel: str) -> None:
        if channel == LOCAL_CHANNEL or channel in self.config.access.channels:
            return
        # A trigger runs its deploys in its own channel, named like its member (`ci:jenkins`).
        if any(channel in t.channels or channel == t.member for t in self.config.triggers):
            return
        raise Refused(
            f"commands are not accepted in {channel}",
            hint="use one of the configured channels (access.channels)",
        )
