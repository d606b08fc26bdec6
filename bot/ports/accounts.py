"""Which AWS account an environment's calls reach (its role's, or the base credentials')."""

from __future__ import annotations

from typing import Protocol

from bot.config import AwsScope


class AccountPort(Protocol):
    async def account(self, where: AwsScope) -> str:
        """The 12-digit account id; Refused when the credentials cannot be used."""
