"""The Dockerfile builds reproducibly: its base image by digest, the dependencies from the
lock file with hashes and as wheels, no build tools in the image, a non-root user; the lock
file is what `uv export` makes of uv.lock. Where a container engine runs, the image is
built too."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent.parent
DOCKERFILE = (ROOT / "Dockerfile").read_text()
UV = ROOT / ".venv" / "bin" / "uv"


def instructions() -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments left out."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def test_every_base_image_is_pinned_by_digest() -> None:
    args = dict(
        line.split(None, 1)[1].split("=", 1) for line in instructions() if line.startswith("ARG ")
    )
    bases = [line.split()[1] for line in instructions() if line.startswith("FROM ")]
    assert len(bases) == 2
    for base in bases:
        image = args.get(base.strip("${}"), base)
        assert re.fullmatch(r"[\w./-]+:[\w.-]+@sha256:[0-9a-f]{64}", image), image


def test_dependencies_come_from_the_lock_file_with_hashes_and_as_wheels() -> None:
    installs = [line for line in instructions() if "pip install" in line]
    assert any(
        "-r requirements.lock" in line
        and "--require-hashes" in line
        and "--only-binary=:all:" in line
        and "--no-deps" in line
        for line in installs
    ), installs
    # The project itself adds no dependency of its own.
    assert all("--no-deps" in line for line in installs), installs


def test_the_image_installs_no_build_tools_and_runs_as_a_user() -> None:
    text = " ".join(instructions())
    for tool in ("apt-get", "apk ", "gcc", "build-essential", "make ", "curl ", "wget "):
        assert tool not in text, tool
    users = [line for line in instructions() if line.startswith("USER ")]
    assert users and users[-1] != "USER root" and not users[-1].startswith("USER 0")


def test_the_lock_file_is_what_uv_exports_from_uv_lock() -> None:
    lock = (ROOT / "requirements.lock").read_text()
    exported = subprocess.run(
        [
            str(UV),
            "export",
            "--format",
            "requirements-txt",
            "--no-emit-project",
            "--no-dev",
            "--frozen",
            "--no-header",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout

    def pins(text: str) -> list[str]:
        return sorted(re.findall(r"^([A-Za-z0-9_.-]+==\S+)", text, re.MULTILINE))

    assert pins(lock) == pins(exported), "run: make lock"
    assert "--hash=sha256:" in lock
    # The image carries the bot, not the test sandbox.
    assert not re.search(r"^(moto|pytest)==", lock, re.MULTILINE)


def _engine() -> tuple[str | None, str]:
    """A container engine that answers, or why there is none."""
    for name in ("docker", "podman"):
        path = shutil.which(name)
        if path is None:
            continue
        probe = subprocess.run(
            [path, "info"], capture_output=True, text=True, timeout=30, check=False
        )
        if probe.returncode == 0:
            return path, ""
        reason = (probe.stderr or probe.stdout).strip().splitlines()[-1:] or ["no answer"]
        return None, f"{name} is installed but its engine does not answer: {reason[0]}"
    return None, "no container engine (docker, podman) on this machine"


def test_the_image_builds_where_a_container_engine_runs() -> None:
    engine, reason = _engine()
    if engine is None:
        pytest.skip(f"image not built: {reason}")
    build = subprocess.run(
        [engine, "build", "--tag", "kajitori:test", str(ROOT)],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert build.returncode == 0, build.stderr[-4000:]
    version = subprocess.run(
        [engine, "run", "--rm", "kajitori:test", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "check-config" in version.stdout, version.stdout + version.stderr
