"""The command line as a user runs it: a subprocess, its output and its exit code."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import demo_data

ROOT = Path(__file__).parent.parent.parent


def kajitori(
    *args: str,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "adapters.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        cwd=cwd or ROOT,
        check=False,
    )


def config_file(tmp_path: Path) -> str:
    data = demo_data()
    data["store"] = f"sqlite:///{tmp_path}/state.db"
    path = tmp_path / "kajitori.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_run_refusal_exits_1_naming_the_missing_permission(tmp_path: Path) -> None:
    done = kajitori(
        "run", "--config", config_file(tmp_path), "--as", "local:dave", "status api production"
    )
    assert done.returncode == 1
    assert "local:dave lacks permission status:production" in done.stdout


def test_run_usage_error_exits_2_with_the_usage_line(tmp_path: Path) -> None:
    done = kajitori("run", "--config", config_file(tmp_path), "--as", "local:alice", "lock")
    assert done.returncode == 2
    assert "usage: lock SERVICE ENV [REASON...]" in done.stdout


def test_run_unknown_environment_exits_2_with_a_suggestion_and_the_known_ones(
    tmp_path: Path,
) -> None:
    done = kajitori(
        "run", "--config", config_file(tmp_path), "--as", "local:alice", "status api Stagin"
    )
    assert done.returncode == 2
    assert "unknown environment 'Stagin': did you mean `staging`?" in done.stdout
    assert "production (aliases: prod, 本番)" in done.stdout and "staging" in done.stdout
    assert "usage: status [SERVICE] [ENV]" in done.stdout
    done = kajitori("run", "--config", config_file(tmp_path), "--as", "local:alice", "deplyo api")
    assert done.returncode == 2 and "did you mean `deploy`?" in done.stdout


def test_run_uses_kajitori_config_and_local_user(tmp_path: Path) -> None:
    done = kajitori("run", "help", env={"KAJITORI_CONFIG": config_file(tmp_path), "USER": "alice"})
    assert done.returncode == 0
    assert "status [SERVICE] [ENV]" in done.stdout


def test_run_as_a_stranger_is_refused(tmp_path: Path) -> None:
    done = kajitori(
        "run", "help", env={"KAJITORI_CONFIG": config_file(tmp_path), "USER": "mallory"}
    )
    assert done.returncode == 1 and "local:mallory is not a member" in done.stdout


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    done = kajitori("run", "--config", str(tmp_path / "nope.yaml"), "help")
    assert done.returncode == 1 and "cannot read" in done.stderr
    assert "Traceback" not in done.stderr


def test_shell_reads_commands_line_by_line_from_stdin(tmp_path: Path) -> None:
    script = "help\nlock api staging testing\njobs\nunlock api staging\nhistory\n"
    done = kajitori("shell", "--config", config_file(tmp_path), "--as", "local:alice", stdin=script)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "kajitori> lock api staging testing" in out
    assert "api/staging locked by local:alice: testing" in out
    assert "api/staging unlocked by local:alice" in out
    assert out.index("locked by") < out.index("unlocked by")
    assert "lock api staging testing" in out.split("kajitori> history", 1)[1]


def test_demo_runs_a_scripted_session_against_the_sandbox(tmp_path: Path) -> None:
    script = (
        "help\nstatus api staging\nlock api staging testing\nunlock api staging\nhistory\njobs\n"
    )
    done = kajitori("demo", stdin=script, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "you are local:alice" in out
    assert "api in staging (ECS staging/api)" in out
    assert "version: v1 (sha256:" in out and "tasks: desired 2, running 2" in out
    assert "api/staging locked by local:alice: testing" in out
    assert "Traceback" not in out + done.stderr
