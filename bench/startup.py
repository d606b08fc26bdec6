"""How long kajitori takes to start, against the floor of importing what it cannot do without.

    .venv/bin/python bench/startup.py [--runs 7] [--no-bytecode-cache]

Measured, each the median of `--runs` runs in fresh processes:
  - the floor: `python -c "import aiobotocore.session, slack_sdk"`;
  - `kajitori run "status api staging"` against the AWS sandbox (started once, in its own
    process), the whole command from exec to exit;
  - `kajitori serve`: from exec until /healthz answers, and its RSS once idle;
and, for the floor and `run`, the CPU seconds each process used.

The processes measured read their compiled bytecode from a cache of their own (a temporary
PYTHONPYCACHEPREFIX, filled by a first run of each), as an installed kajitori does: pip
compiles the bytecode when it installs, the image included. `--no-bytecode-cache` runs them
with PYTHONDONTWRITEBYTECODE=1 and no cache of their own instead: what is compiled already
(Python's own library) is used, and every module of a venv installed without compiling
(`uv pip install` does not compile) is compiled again in every process. The last line
printed is the figures as one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEMO_CONFIG = ROOT / "examples" / "demo.yaml"
PYTHON = sys.executable
# The `kajitori` command as its installed script starts it (adapters/launcher.py).
KAJITORI = [PYTHON, "-m", "adapters"]


def timed(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Seconds from exec to exit, and the CPU seconds the process used (user and system):
    on a busy machine the first grows with the load, the second much less."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    subprocess.run(args, env=env, check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def serve_start(env: dict[str, str], config: Path, port: int) -> tuple[float, int]:
    """Seconds until /healthz answers, and the idle RSS in KiB a second later."""
    began = time.perf_counter()
    process = subprocess.Popen(
        [
            *KAJITORI,
            "serve",
            "--config",
            str(config),
            "--port",
            str(port),
            "--host",
            "127.0.0.1",
        ],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                    ready = time.perf_counter() - began
                    break
            except OSError:
                if process.poll() is not None:
                    raise RuntimeError("kajitori serve exited") from None
                time.sleep(0.01)
        time.sleep(1)
        status = Path(f"/proc/{process.pid}/status").read_text()
        rss = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS"))
        return ready, rss
    finally:
        process.terminate()
        process.wait(20)


def main() -> dict[str, float | bool]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument(
        "--no-bytecode-cache",
        action="store_true",
        help="write no bytecode: modules not compiled at install are compiled in every process",
    )
    args = parser.parse_args()
    runs = args.runs
    sandbox = subprocess.Popen(
        [PYTHON, "-m", "adapters.cli", "sandbox", "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    folder = Path(tempfile.mkdtemp(prefix="kajitori-startup-"))
    try:
        assert sandbox.stdout is not None
        env = dict(os.environ)
        for line in sandbox.stdout:
            if line.startswith("export "):
                name, _, value = line.removeprefix("export ").strip().partition("=")
                env[name] = value.strip("'\"")
            elif "AWS_ENDPOINT_URL=" in line:
                env["AWS_ENDPOINT_URL"] = line.split("AWS_ENDPOINT_URL=", 1)[1].split()[0]
            if "Ctrl-C" in line:
                break
        env.setdefault("AWS_ACCESS_KEY_ID", "bench")
        env.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
        env.pop("SLACK_BOT_TOKEN", None)
        if args.no_bytecode_cache:
            env["PYTHONDONTWRITEBYTECODE"] = "1"
            env.pop("PYTHONPYCACHEPREFIX", None)
        else:
            # Every module's bytecode, written by the warm-up runs into a folder of its own.
            env["PYTHONPYCACHEPREFIX"] = str(folder / "pycache")
            env.pop("PYTHONDONTWRITEBYTECODE", None)
        config = folder / "kajitori.yaml"
        data = yaml.safe_load(DEMO_CONFIG.read_text())
        data["store"] = f"sqlite://{folder}/state.db"
        config.write_text(yaml.safe_dump(data))
        floor = [PYTHON, "-c", "import aiobotocore.session, slack_sdk"]
        run = [
            *KAJITORI,
            "run",
            "--config",
            str(config),
            "--as",
            "local:alice",
            "status api staging",
        ]
        # Warm the file cache (and fill the bytecode cache) for each process measured.
        timed(floor, env)
        timed(run, env)
        serve_start(env, config, 30999)
        # In turns, so that a change in the machine's load weighs on both alike.
        floors: list[tuple[float, float]] = []
        runs_s: list[tuple[float, float]] = []
        for _ in range(runs):
            floors.append(timed(floor, env))
            runs_s.append(timed(run, env))
        serves = [serve_start(env, config, 31000 + n) for n in range(3)]
        floor_s, run_s = (
            statistics.median(f[0] for f in floors),
            statistics.median(r[0] for r in runs_s),
        )
        floor_cpu, run_cpu = (
            statistics.median(f[1] for f in floors),
            statistics.median(r[1] for r in runs_s),
        )
        return {
            "import_floor_s": round(floor_s, 3),
            "run_status_s": round(run_s, 3),
            "serve_ready_s": round(statistics.median(s[0] for s in serves), 3),
            "serve_idle_rss_mib": round(statistics.median(s[1] for s in serves) / 1024, 1),
            "run_vs_floor": round(run_s / floor_s, 2),
            "import_floor_cpu_s": round(floor_cpu, 3),
            "run_status_cpu_s": round(run_cpu, 3),
            "run_vs_floor_cpu": round(run_cpu / floor_cpu, 2),
            "bytecode_cache": not args.no_bytecode_cache,
            # Other work on the machine slows every figure above.
            "load_average": round(os.getloadavg()[0], 2),
        }
    finally:
        sandbox.terminate()
        sandbox.wait(20)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    print(json.dumps(main()))
