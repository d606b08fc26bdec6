"""What each way of starting kajitori loads and starts: a one-shot `run` only what its
command needs, `serve` without Slack no slack-bolt."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from tests.conftest import demo_data
from tests.support.serve import ServeProcess

ROOT = Path(__file__).parent.parent.parent

# Loaded only by the commands, or the servers, that need them.
DEFERRED = ("asyncssh", "aiomysql", "pymysql", "prometheus_client", "slack_bolt")

# Runs the command line's `main` as the process's own (as `kajitori` does), then says which of
# DEFERRED it loaded and how many objects it left out of the collector's reach.
LOADED_AFTER_RUN = """
import gc, json, sys
from adapters.cli import main
wanted = set(sys.argv[1].split())
sys.argv[1:] = sys.argv[2:]
code = main()
loaded = sorted(set(sys.modules) & wanted)
print(json.dumps({"code": code, "loaded": loaded, "frozen": gc.get_freeze_count()}))
"""


# Starts as the installed `kajitori` script does (adapters/launcher.py), counting the
# collections that ran while the command line's modules loaded.
LAUNCHED = """
import gc, json, sys
collections = []

def counted(phase, info):
    cli = sys.modules.get("adapters.cli")
    loading = cli is not None and not hasattr(cli, "main")
    if phase == "start" and loading:
        collections.append(info["generation"])

gc.callbacks.append(counted)
from adapters.launcher import main
sys.argv[1:] = sys.argv[2:]
code = main()
print(json.dumps({"code": code, "while_loading": collections, "enabled": gc.isenabled(),
                  "frozen": gc.get_freeze_count()}))
"""


def run_in_process(
    tmp_path: Path, sandbox: Any, text: str, script: str = LOADED_AFTER_RUN
) -> dict[str, Any]:
    data = demo_data()
    data["store"] = f"sqlite:///{tmp_path}/state.db"
    config = tmp_path / "kajitori.yaml"
    config.write_text(yaml.safe_dump(data))
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "AWS_ENDPOINT_URL": sandbox.url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    env.pop("SLACK_BOT_TOKEN", None)
    args = ["run", "--config", str(config), "--as", "local:alice", text]
    done = subprocess.run(
        [sys.executable, "-c", script, " ".join(DEFERRED), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    last = done.stdout.strip().splitlines()[-1]
    result: dict[str, Any] = json.loads(last)
    result["stdout"] = done.stdout
    return result


def test_a_one_shot_status_loads_no_database_tunnel_metrics_or_slack(
    tmp_path: Path, sandbox: Any
) -> None:
    result = run_in_process(tmp_path, sandbox, "status api staging")
    assert result["code"] == 0
    assert "api in staging (ECS staging/api)" in result["stdout"]
    assert result["loaded"] == []


def test_a_one_shot_run_leaves_what_it_built_out_of_the_collectors_reach_before_exit(
    tmp_path: Path, sandbox: Any
) -> None:
    result = run_in_process(tmp_path, sandbox, "status api staging")
    assert result["code"] == 0
    # Every module, the config and botocore's models: not walked again on the way out.
    assert result["frozen"] > 10_000


def test_the_command_loads_its_modules_with_the_collector_off_and_turns_it_back_on(
    tmp_path: Path, sandbox: Any
) -> None:
    result = run_in_process(tmp_path, sandbox, "status api staging", script=LAUNCHED)
    assert result["code"] == 0
    assert "api in staging (ECS staging/api)" in result["stdout"]
    assert result["while_loading"] == []
    assert result["enabled"] is True
    assert result["frozen"] > 10_000


async def test_serve_without_slack_says_so_on_the_events_url(tmp_path: Path, sandbox: Any) -> None:
    data = demo_data()
    data["store"] = f"sqlite:///{tmp_path}/state.db"
    assert "SLACK_BOT_TOKEN" not in os.environ
    server = await ServeProcess(data, {"AWS_ENDPOINT_URL": sandbox.url}, tmp_path).start()
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{server.url}/slack/events", data=b"{}") as response,
        ):
            assert response.status == 503
            body = await response.json()
        assert body == {"error": "Slack is not configured: SLACK_BOT_TOKEN is not set"}
    finally:
        await server.stop()
