"""Start the real `kajitori serve` as a subprocess, with a config file and an environment."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
import yaml


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServeProcess:
    def __init__(
        self,
        config: dict[str, Any],
        env: dict[str, str],
        folder: Path,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.extra_args = list(extra_args)
        self.config = config
        self.env = env
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: asyncio.subprocess.Process | None = None
        self.log_path = folder / f"serve-{self.port}.log"

    async def start(self, timeout: float = 60.0) -> ServeProcess:
        config_path = self.folder / f"kajitori-{self.port}.yaml"
        config_path.write_text(yaml.safe_dump(self.config))
        env = {**os.environ, **self.env, "KAJITORI_LOG_LEVEL": "INFO"}
        log = self.log_path.open("wb")
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "adapters.cli",
            "serve",
            "--config",
            str(config_path),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            *self.extra_args,
            env=env,
            stdout=log,
            stderr=log,
        )
        try:
            async with aiohttp.ClientSession() as session:
                deadline = asyncio.get_running_loop().time() + timeout
                while True:
                    if self.process.returncode is not None:
                        raise RuntimeError(f"kajitori serve exited:\n{self.log()}")
                    try:
                        async with session.get(f"{self.url}/healthz") as response:
                            if response.status == 200:
                                return self
                    except aiohttp.ClientError:
                        pass
                    if asyncio.get_running_loop().time() > deadline:
                        raise RuntimeError(f"kajitori serve did not start:\n{self.log()}")
                    await asyncio.sleep(0.1)
        except BaseException:
            # A server that did not come up must not outlive the test that started it.
            await self.stop(signal.SIGKILL)
            raise

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    async def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        self.process.send_signal(sig)
        try:
            await asyncio.wait_for(self.process.wait(), 15)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
