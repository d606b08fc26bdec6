"""The database tests' servers: a real MariaDB and a real sshd bastion on 127.0.0.1 (the
demo's own, from `sandbox.database`), and what this test process holds open, from /proc."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from sandbox.database import MariaDbServer, SshBastion, free_port

__all__ = [
    "MariaDbServer",
    "SshBastion",
    "free_port",
    "own_connections_to",
    "own_listening_ports",
]


# What this test process holds open, read from /proc: other processes on the machine (and
# their ports) do not count.
_LISTEN, _ESTABLISHED = "0A", "01"


def _own_socket_inodes() -> set[str]:
    inodes = set()
    for fd in Path("/proc/self/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    return inodes


def _own_tcp_sockets() -> list[tuple[int, int, str]]:
    """(local port, remote port, state) of every TCP socket this process holds."""
    own = _own_socket_inodes()
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                parts = line.split()
                if len(parts) > 9 and parts[9] in own:
                    local = int(parts[1].rsplit(":", 1)[1], 16)
                    remote = int(parts[2].rsplit(":", 1)[1], 16)
                    found.append((local, remote, parts[3]))
    return found


def own_listening_ports() -> set[int]:
    return {local for local, _, state in _own_tcp_sockets() if state == _LISTEN}


def own_connections_to(port: int) -> int:
    return sum(
        1 for _, remote, state in _own_tcp_sockets() if remote == port and state == _ESTABLISHED
    )
