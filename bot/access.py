"""Who may run what, where: people and their ids, roles with `command:env` permissions,
and the channel allowlist.

A member id is `ADAPTER:ID` (`slack:U012ABC`); `access.people` maps a person to all their ids,
and roles go to a person or to an id. "Nobody approves their own request" compares people.
A permission is `COMMAND[:ENV]`, each part a glob: `*`, `deploy:staging`, `db:*`, `status`
(any environment). A command that names no environment needs `COMMAND` or `COMMAND:*`.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import cached_property

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

    @cached_property
    def _people(self) -> dict[str, str]:
        """Each id listed under a person, to that person."""
        return {
            member: person
            for person, members in self.config.access.people.items()
            for member in members
        }

    def person_of(self, member: str) -> str:
        """The person an id belongs to; an id listed under nobody is a person of its own."""
        return self._people.get(member, member)

    def same_person(self, first: str, second: str) -> bool:
        return self.person_of(first) == self.person_of(second)

    def who(self, member: str) -> str:
        """`alice (typetalk:12345)`, or the id alone when it belongs to no person."""
        person = self.person_of(member)
        return member if person == member else f"{person} ({member})"

    def roles_of(self, member: str) -> list[str]:
        members = self.config.access.members
        roles = list(members.get(member, []))
        person = self.person_of(member)
        if person != member:
            roles.extend(r for r in members.get(person, []) if r not in roles)
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
        # Its announcement channels (`channels`) are where kajitori speaks, not where it
        # listens: a member typing there is held to access.channels like anywhere else.
        if any(channel == t.member for t in self.config.triggers):
            return
        raise Refused(
            f"commands are not accepted in {channel}",
            hint="use one of the configured channels (access.channels)",
        )
