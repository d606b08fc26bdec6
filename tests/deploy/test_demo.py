"""`kajitori demo --as local:alice "deploy api staging …"` as a user runs it: a subprocess with
its own sandbox at the demo's default timing."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent.parent


async def demo(text: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "adapters.cli",
        "demo",
        "--as",
        "local:alice",
        text,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), 100)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, output.decode()


async def test_demo_deploy_streams_progress_and_exits_0_and_broken_exits_1() -> None:
    (good_code, good), (broken_code, broken) = await asyncio.gather(
        demo("deploy api staging v2"), demo("deploy api staging broken")
    )

    assert good_code == 0, good
    lines = good.splitlines()
    assert "… deploy api v2 to staging: job J1" in lines
    progress = [line for line in lines if line.startswith("[job J1] … api-staging:2 IN_PROGRESS")]
    assert len(progress) >= 2, good
    assert all("elapsed" in line for line in progress)
    assert any(line.startswith("[job J1] ✅ deployed api v2 to staging in ") for line in lines)

    assert broken_code == 1, broken
    assert "ECS deployment circuit breaker tripped" in broken
    assert "❌ deploy api broken to staging failed: ECS rolled it back." in broken
    assert "Essential container in task exited" in broken
