"""SSH to the bastion with asyncssh, and local port forwards through it to the database.

Key authentication only, and the bastion's host key must be in the configured known_hosts:
an unknown or changed key ends the attempt before any credential is sent. Closing the
connection closes its listeners and every connection forwarded through them.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import asyncssh

from bot.config import Bastion
from bot.errors import OperationFailed

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 15.0
CLOSE_TIMEOUT = 5.0
# Notices a bastion that went away while a session is open.
KEEPALIVE_INTERVAL = 30.0


@dataclass
class Forward:
    """One listening port that forwards each accepted connection to the database."""

    listener: asyncssh.SSHListener
    host: str

    @property
    def port(self) -> int:
        port: int = self.listener.get_port()
        return port

    async def close(self) -> None:
        self.listener.close()
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await self.listener.wait_closed()
        except TimeoutError:
            log.warning("the listener on %s:%s did not close in time", self.host, self.port)


class BastionConnection:
    def __init__(self, bastion: Bastion, connection: asyncssh.SSHClientConnection) -> None:
        self.bastion = bastion
        self._connection = connection
        self._closed = asyncio.Event()

    @property
    def alive(self) -> bool:
        return not self._closed.is_set() and not self._connection.is_closed()

    async def forward(self, bind: str, dest_host: str, dest_port: int, port: int = 0) -> Forward:
        try:
            listener = await self._connection.forward_local_port(bind, port, dest_host, dest_port)
        except OSError as error:
            raise OperationFailed(
                f"cannot listen on {bind}:{port or 'any port'}: {error.strerror or error}"
            ) from None
        return Forward(listener=listener, host=bind)

    async def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        self._connection.close()
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await self._connection.wait_closed()
        except TimeoutError:
            log.warning("the SSH connection to %s did not close in time", self.bastion.host)


async def connect_bastion(
    bastion: Bastion, *, timeout: float = CONNECT_TIMEOUT
) -> BastionConnection:
    where = f"{bastion.user}@{bastion.host}:{bastion.port}"
    try:
        async with asyncio.timeout(timeout):
            connection = await asyncssh.connect(
                bastion.host,
                port=bastion.port,
                username=bastion.user,
                client_keys=[bastion.key_file],
                known_hosts=bastion.known_hosts,
                preferred_auth="publickey",
                agent_path=None,
                # Only what the kajitori config says: no ~/.ssh/config, no agent, no passwords.
                config=[],
                password=None,
                connect_timeout=timeout,
                login_timeout=timeout,
                keepalive_interval=KEEPALIVE_INTERVAL,
            )
    except asyncssh.HostKeyNotVerifiable:
        raise OperationFailed(
            f"the bastion {bastion.host}:{bastion.port} presented a host key that is not in "
            f"{bastion.known_hosts}; refusing to connect",
            hint="if the bastion's key changed on purpose, update known_hosts",
        ) from None
    except asyncssh.PermissionDenied:
        raise OperationFailed(
            f"the bastion refused the key {bastion.key_file} for {where}"
        ) from None
    except FileNotFoundError as error:
        raise OperationFailed(f"cannot read {error.filename} for the bastion {where}") from None
    except TimeoutError:
        raise OperationFailed(f"the bastion {where} did not answer within {timeout:.0f}s") from None
    except (OSError, asyncssh.Error, ValueError) as error:
        raise OperationFailed(f"cannot connect to the bastion {where}: {_reason(error)}") from None
    return BastionConnection(bastion, connection)


def _reason(error: Exception) -> str:
    if isinstance(error, asyncssh.Error):
        return error.reason
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__
