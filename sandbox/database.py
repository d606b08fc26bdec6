"""A real MariaDB and a real OpenSSH sshd on 127.0.0.1, each in its own folder: the demo's
database `main` and its bastion (`kajitori demo`, `kajitori sandbox`), and the database tests'.

MariaDB gets a fresh data directory, the schema `app` with a few tables, and admin users that
may only create and drop users (like an Aurora master user would, for that purpose). sshd is
the bastion: key-only, no shell, and forwarding allowed to MariaDB's address only.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import asyncssh
import pymysql

START_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


# Each program, the Debian package that has it, and where it is when not on PATH.
Programs = dict[str, tuple[str, tuple[str, ...]]]
PROGRAMS: Programs = {
    "mariadb-install-db": ("mariadb-server", ("/usr/bin", "/usr/local/bin")),
    "mariadbd": ("mariadb-server", ("/usr/sbin", "/usr/local/sbin")),
    "sshd": ("openssh-server", ("/usr/sbin", "/usr/local/sbin")),
}


class MissingProgram(RuntimeError):
    def __init__(self, program: str, package: str) -> None:
        super().__init__(
            f"{program} is not installed (Debian package {package}; `make system-packages`)"
        )
        self.program = program
        self.package = package


def _find(name: str, programs: Programs = PROGRAMS) -> str | None:
    _, folders = programs[name]
    return shutil.which(name) or next(
        (str(Path(f) / name) for f in folders if (Path(f) / name).exists()), None
    )


def _binary(name: str) -> str:
    found = _find(name)
    if found is None:
        raise MissingProgram(name, PROGRAMS[name][0])
    return found


def missing_packages(programs: Programs = PROGRAMS) -> list[str]:
    """The Debian packages whose programs the demo database needs and this machine lacks."""
    return sorted(
        {package for name, (package, _) in programs.items() if _find(name, programs) is None}
    )


def _stop(process: subprocess.Popen[bytes] | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            text = log.read_text(errors="replace") if log.exists() else ""
            raise RuntimeError(f"{what} exited with {process.returncode}:\n{text[-3000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {START_TIMEOUT:.0f}s")


class MariaDbServer:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.datadir = folder / "data"
        self.socket = folder / "mysqld.sock"
        self.log = folder / "error.log"
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        # Our own root connections, left out of `connections_made`.
        self._own_connections = 0

    def start(self) -> None:
        install = _binary("mariadb-install-db")
        server = _binary("mariadbd")
        as_user = [f"--user={getpass.getuser()}"]
        subprocess.run(
            [
                install,
                "--no-defaults",
                *as_user,
                f"--datadir={self.datadir}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        self.process = subprocess.Popen(
            [
                server,
                "--no-defaults",
                *as_user,
                f"--datadir={self.datadir}",
                f"--socket={self.socket}",
                f"--port={self.port}",
                "--bind-address=127.0.0.1",
                "--skip-name-resolve",
                f"--pid-file={self.folder / 'mariadbd.pid'}",
                f"--log-error={self.log}",
                "--innodb-buffer-pool-size=32M",
                "--skip-log-bin",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for_port(self.port, self.process, self.log, "mariadbd")

    def stop(self) -> None:
        _stop(self.process)

    def root(self) -> Any:
        # Over the socket in this folder only: root has no password and no TCP account.
        self._own_connections += 1
        return pymysql.connect(unix_socket=str(self.socket), user="root", autocommit=True)

    def query(self, sql: str, args: Any = None) -> list[tuple[Any, ...]]:
        with contextlib.closing(self.root()) as connection, connection.cursor() as cursor:
            cursor.execute(sql, args)
            return list(cursor.fetchall())

    def setup(self, admins: dict[str, str]) -> None:
        statements = [
            # Only the socket's root: no root over TCP, no anonymous users.
            "DROP USER IF EXISTS 'root'@'127.0.0.1', 'root'@'::1', ''@'localhost'",
            "CREATE DATABASE app",
            "CREATE TABLE app.orders (id INT PRIMARY KEY, customer VARCHAR(40) NOT NULL,"
            " amount DECIMAL(10,2) NOT NULL, note TEXT NULL)",
            "CREATE TABLE app.events (id INT PRIMARY KEY, kind VARCHAR(20) NOT NULL)",
            "CREATE TABLE app.secrets_kept_elsewhere (id INT PRIMARY KEY)",
        ]
        for name, password in admins.items():
            statements += [
                f"CREATE USER '{name}'@'%' IDENTIFIED BY '{password}'",
                f"GRANT CREATE USER, PROCESS, CONNECTION ADMIN ON *.* TO '{name}'@'%'",
                f"GRANT SELECT ON mysql.user TO '{name}'@'%'",
                f"GRANT SELECT ON app.* TO '{name}'@'%' WITH GRANT OPTION",
            ]
        with contextlib.closing(self.root()) as connection, connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
            for host in self.query("SELECT Host FROM mysql.user WHERE User = 'root'"):
                if host[0] not in ("localhost",):
                    cursor.execute("DROP USER 'root'@%s", (host[0],))
            cursor.executemany(
                "INSERT INTO app.orders VALUES (%s, %s, %s, %s)",
                [
                    (
                        i,
                        f"customer-{i % 7}",
                        f"{i * 12.5:.2f}",
                        "line one\nline two" if i == 3 else None,
                    )
                    for i in range(1, 31)
                ],
            )
            cursor.executemany(
                "INSERT INTO app.events VALUES (%s, %s)",
                [(i, ("signup", "login", "purchase")[i % 3]) for i in range(1, 251)],
            )

    def kajitori_users(self) -> list[str]:
        rows = self.query("SELECT User FROM mysql.user WHERE User LIKE 'kj\\_%%' ORDER BY User")
        return [str(r[0]) for r in rows]

    def users(self) -> list[str]:
        return sorted(str(r[0]) for r in self.query("SELECT User FROM mysql.user"))

    def connections_made(self) -> int:
        """Connection attempts by anyone but our own root connections (a counter)."""
        rows = self.query("SHOW GLOBAL STATUS LIKE 'Connections'")
        return int(rows[0][1]) - self._own_connections

    def drop_kajitori_users(self) -> None:
        for name in self.kajitori_users():
            self.query("DROP USER IF EXISTS %s@'%%'", (name,))


class SshBastion:
    """sshd as the bastion: it only forwards, and only to `permit`."""

    def __init__(self, folder: Path, permit: tuple[str, int]) -> None:
        self.folder = folder
        self.permit = permit
        self.port = free_port()
        self.user = getpass.getuser()
        self.key_file = folder / "client_key"
        self.known_hosts = folder / "known_hosts"
        self.wrong_known_hosts = folder / "known_hosts_of_another_host"
        self.log = folder / "sshd.log"
        self.process: subprocess.Popen[bytes] | None = None

    def _write_key(self, path: Path) -> Any:
        key = asyncssh.generate_private_key("ssh-ed25519")
        key.write_private_key(str(path))
        path.chmod(0o600)
        return key

    def start(self) -> None:
        sshd = _binary("sshd")
        host_key = self._write_key(self.folder / "host_key")
        other_key = self._write_key(self.folder / "other_host_key")
        client_key = self._write_key(self.key_file)
        host, port = self.permit
        client_public = client_key.export_public_key().decode().strip()
        (self.folder / "authorized_keys").write_text(
            f'restrict,port-forwarding,permitopen="{host}:{port}" {client_public}\n'
        )
        self.known_hosts.write_text(
            f"[127.0.0.1]:{self.port} {host_key.export_public_key().decode().strip()}\n"
        )
        self.wrong_known_hosts.write_text(
            f"[127.0.0.1]:{self.port} {other_key.export_public_key().decode().strip()}\n"
        )
        config = self.folder / "sshd_config"
        root = os.geteuid() == 0
        config.write_text(
            "\n".join(
                [
                    f"Port {self.port}",
                    "ListenAddress 127.0.0.1",
                    f"HostKey {self.folder / 'host_key'}",
                    f"PidFile {self.folder / 'sshd.pid'}",
                    f"AuthorizedKeysFile {self.folder / 'authorized_keys'}",
                    # The keys live in a temporary folder, not in a home directory.
                    "StrictModes no",
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "UsePAM no",
                    f"PermitRootLogin {'prohibit-password' if root else 'no'}",
                    f"AllowUsers {self.user}",
                    "AllowTcpForwarding local",
                    f"PermitOpen {host}:{port}",
                    "AllowAgentForwarding no",
                    "X11Forwarding no",
                    "PermitTTY no",
                    "ForceCommand /bin/false",
                    "LogLevel VERBOSE",
                    "",
                ]
            )
        )
        if root:
            # sshd's privilege separation needs this folder when it runs as root.
            Path("/run/sshd").mkdir(mode=0o755, parents=True, exist_ok=True)
        subprocess.run([sshd, "-t", "-f", str(config)], check=True, capture_output=True, timeout=30)
        self.process = subprocess.Popen(
            [sshd, "-D", "-f", str(config), "-E", str(self.log)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for_port(self.port, self.process, self.log, "sshd")

    def stop(self) -> None:
        _stop(self.process)

    def accepted_logins(self) -> int:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return text.count("Accepted publickey")


class DemoDatabase:
    """The demo's database `main`, for every environment: one MariaDB whose admin users are
    the ones the sandbox's seeded secrets name, behind one bastion, both on 127.0.0.1."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.mariadb: MariaDbServer | None = None
        self.bastion: SshBastion | None = None

    def start(self) -> None:
        """Raises `MissingProgram` when MariaDB or sshd is not installed."""
        from sandbox.seed import ENVIRONMENTS, SEED

        try:
            for part in ("mariadb", "bastion"):
                (self.folder / part).mkdir(parents=True, exist_ok=True)
            self.mariadb = MariaDbServer(self.folder / "mariadb")
            self.mariadb.start()
            self.mariadb.setup({SEED.db_admin(env): SEED.db_password(env) for env in ENVIRONMENTS})
            self.bastion = SshBastion(
                self.folder / "bastion", permit=("127.0.0.1", self.mariadb.port)
            )
            self.bastion.start()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if self.bastion is not None:
            self.bastion.stop()
        if self.mariadb is not None:
            self.mariadb.stop()

    def point(self, database: dict[str, Any]) -> None:
        """Point a config's database entry at this MariaDB, through this bastion."""
        assert self.mariadb is not None and self.bastion is not None
        database["connect_host"] = "127.0.0.1"
        database["port"] = self.mariadb.port
        database["bastion"] = {
            "host": "127.0.0.1",
            "port": self.bastion.port,
            "user": self.bastion.user,
            "key_file": str(self.bastion.key_file),
            "known_hosts": str(self.bastion.known_hosts),
        }
