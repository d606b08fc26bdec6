"""The demo as a newcomer runs it, as subprocesses: `kajitori sandbox` printing what a client
needs, `kajitori run` against it with no AWS credentials of one's own, `db open` and `sql`
through a real bastion to a real MariaDB, and the shell switching member for an approval."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.database import PROGRAMS
from sandbox.demo import start_demo_database
from tests.cli.test_cli import ROOT, kajitori

# Starting MariaDB, sshd and the sandbox takes a while on a busy machine.
pytestmark = pytest.mark.timeout(600)

# What a newcomer's shell has: no AWS variables at all.
CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KAJITORI_"))}


def _read_until_ready(process: subprocess.Popen[str], timeout: float = 400) -> list[str]:
    """The sandbox's lines up to its `# ready` line (it is killed if that takes too long)."""
    assert process.stdout is not None
    watchdog = threading.Timer(timeout, process.kill)
    watchdog.start()
    lines: list[str] = []
    try:
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("# ready"):
                return lines
    finally:
        watchdog.cancel()
    raise AssertionError(f"the sandbox did not say it was ready: {lines}")


@pytest.fixture(scope="module")
def sandbox_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, list[str]]]:
    """`kajitori sandbox` running, and the file its output was saved to."""
    process = subprocess.Popen(
        [sys.executable, "-m", "adapters.cli", "sandbox", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=tmp_path_factory.mktemp("elsewhere"),
        env={**CLEAN_ENV, "PYTHONPATH": str(ROOT)},
    )
    try:
        lines = _read_until_ready(process)
        saved = tmp_path_factory.mktemp("sandbox") / "sandbox.env"
        saved.write_text("\n".join(lines) + "\n")
        yield saved, lines
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)


def _sourced(saved: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`. sandbox.env && kajitori ARGS` in a shell with no AWS variables of its own."""
    command = f'. "{saved}" && exec "{sys.executable}" -m adapters.cli "$@"'
    return subprocess.run(
        ["bash", "-c", command, "kajitori", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**CLEAN_ENV, "PYTHONPATH": str(ROOT)},
        check=False,
    )


def test_sandbox_prints_shell_exports_for_every_variable_a_client_needs(
    sandbox_env: tuple[Path, list[str]],
) -> None:
    _, lines = sandbox_env
    exports = dict(
        line.removeprefix("export ").split("=", 1) for line in lines if line.startswith("export ")
    )
    assert exports["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
    assert exports["AWS_REGION"] == exports["AWS_DEFAULT_REGION"] == "ap-northeast-1"
    assert exports["AWS_ACCESS_KEY_ID"] and exports["AWS_SECRET_ACCESS_KEY"]
    assert Path(exports["KAJITORI_CONFIG"]).is_file()
    assert all(line.startswith(("export ", "# ")) for line in lines), lines
    assert any(line.startswith("# demo config: ") for line in lines)
    assert any(line.startswith("# database main: MariaDB on 127.0.0.1:") for line in lines)


def test_run_with_the_example_config_works_with_only_the_printed_variables(
    sandbox_env: tuple[Path, list[str]],
) -> None:
    saved, _ = sandbox_env
    done = _sourced(
        saved, "run", "--config", "examples/demo.yaml", "--as", "local:alice", "status api staging"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "api in staging (ECS staging/api)" in done.stdout
    assert "Traceback" not in done.stderr


def test_sql_and_db_open_reach_the_demo_database_and_exit_cleanly(
    sandbox_env: tuple[Path, list[str]],
) -> None:
    saved, _ = sandbox_env
    done = _sourced(
        saved, "run", "--as", "local:dave", "sql main staging SELECT COUNT(*) AS n FROM orders"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 rows" in done.stdout or "1 row" in done.stdout
    assert "30" in done.stdout.splitlines()[-1]
    opened = _sourced(saved, "run", "--as", "local:dave", "db open main production for 5m")
    assert opened.returncode == 0, opened.stdout + opened.stderr
    assert "opened read-only database session" in opened.stdout
    assert "closed: kajitori is shutting down" in opened.stdout
    for output in (done.stderr, opened.stderr):
        assert "Task exception was never retrieved" not in output
        assert "closed database" not in output and "Traceback" not in output


def test_stopping_the_sandbox_stops_its_servers_and_removes_its_folder(
    tmp_path: Path,
) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "adapters.cli", "sandbox", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=tmp_path,
        env={**CLEAN_ENV, "PYTHONPATH": str(ROOT)},
    )
    try:
        lines = _read_until_ready(process)
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    config = next(line for line in lines if line.startswith("export KAJITORI_CONFIG="))
    folder = str(Path(config.split("=", 1)[1]).parent)
    assert not Path(folder).exists()
    left = [pid for pid in os.listdir("/proc") if pid.isdigit() and folder in _cmdline(pid)]
    assert left == []


def _cmdline(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text(errors="replace")
    except OSError:
        return ""


def test_the_demo_shell_switches_member_so_a_second_one_approves(tmp_path: Path) -> None:
    script = "\n".join(
        [
            "deploy api production v2",
            "approve 1",
            "as bob",
            "approve 1",
            "as local:nobody",
            "as dave",
            "sql main staging SELECT COUNT(*) AS n FROM orders",
            "",
        ]
    )
    done = kajitori("demo", stdin=script, cwd=tmp_path, env=CLEAN_ENV, timeout=240)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "you are local:alice" in out
    assert "database main: MariaDB on 127.0.0.1:" in out
    assert "needs approval: request R1 by local:alice" in out
    assert "you cannot approve your own request R1" in out
    assert "you are now local:bob (sre)" in out
    assert "request R1 (deploy api v2 to production) approved by local:bob" in out
    assert "local:nobody is not a member of this bot" in out
    assert "you are now local:dave (analyst)" in out
    assert "✅ deployed api v2 to production" in out
    after_dave = out.split("you are now local:dave", 1)[1]
    assert "SELECT on main/staging: 1 rows" in after_dave or "1 row" in after_dave
    assert "Traceback" not in out + done.stderr


def test_without_mariadb_the_demo_says_which_package_is_missing(tmp_path: Path) -> None:
    programs = {**PROGRAMS, "no-such-mariadbd": ("mariadb-server", ())}
    database, note = start_demo_database(tmp_path, programs)
    assert database is None
    assert (
        note == "db open and sql are off: mariadb-server is not installed (`make system-packages`)"
    )
