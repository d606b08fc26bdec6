"""The `kajitori` command line: serve, shell, run, demo, sandbox, check-config, doctor,
iam-policy."""

from __future__ import annotations

import argparse
import asyncio
import gc
import getpass
import logging
import os
import shlex
import shutil
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from adapters.bootstrap import Bot, config_problems, doctor, generate_policies, running_bot
from adapters.chat.shell import ShellChat, member_named, render
from bot.config import Config, Settings, default_config_path, load_config
from bot.errors import ConfigError, KajitoriError
from bot.messages import Table, render_table
from bot.model import JobStatus, Origin, Outcome

if TYPE_CHECKING:
    from sandbox import Sandbox
    from sandbox.database import DemoDatabase

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _default_member() -> str:
    return f"local:{os.environ.get('USER') or getpass.getuser()}"


def _origin(member: str) -> Origin:
    return Origin(adapter="local", channel="local", member=member)


async def run_text(bot: Bot, chat: ShellChat, member: str, text: str) -> int:
    """Run one command; stream a job's progress until it ends. Returns the exit code."""
    result = await bot.dispatcher.handle(_origin(member), text)
    for message in result.messages:
        chat.write(render(message))
    if result.outcome is Outcome.USAGE:
        return EXIT_USAGE
    if result.outcome is Outcome.STARTED and result.job is not None:
        status = await bot.jobs.wait(result.job.id)
        return EXIT_OK if status is JobStatus.SUCCEEDED else EXIT_FAILED
    return EXIT_OK if result.outcome is Outcome.OK else EXIT_FAILED


async def shell_loop(bot: Bot, chat: ShellChat, member: str) -> int:
    interactive = sys.stdin.isatty()
    loop = asyncio.get_running_loop()
    chat.write(f"kajitori shell as {member} — `help` lists the commands, Ctrl-D leaves")
    while True:
        if interactive:
            sys.stdout.write("kajitori> ")
            sys.stdout.flush()
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            break
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if text in ("exit", "quit"):
            break
        if not interactive:
            chat.write(f"kajitori> {text}")
        wanted = member_named(text)
        if wanted is not None:
            member = _switch(bot, member, wanted, chat)
            continue
        result = await bot.dispatcher.handle(_origin(member), text)
        for message in result.messages:
            chat.write(render(message))
    # A scripted session waits for the jobs it started before leaving.
    for job_id in bot.jobs.running:
        await bot.jobs.wait(job_id)
    return EXIT_OK


def _switch(bot: Bot, member: str, wanted: str, chat: ShellChat) -> str:
    """`as ID` in the shell: the same bot, sandbox and store, another member."""
    access = bot.services.access
    if not wanted:
        chat.write(f"you are {member}; `as ID` switches (as bob, as local:bob)")
        return member
    if not access.is_member(wanted):
        members = ", ".join(bot.config.access.members) or "none"
        chat.write(f"⚠️  {wanted} is not a member of this bot (members: {members})")
        return member
    chat.write(f"you are now {wanted} ({', '.join(access.roles_of(wanted))})")
    return wanted


def _load(path: str | None) -> Config:
    return load_config(path or default_config_path())


async def _with_bot(config: Config, member: str, text: str | None, **kwargs: object) -> int:
    chat = ShellChat()
    settings = Settings()
    chats = [chat]
    if text is None and settings.slack_bot_token is None:
        # No Slack: what would be posted in Slack channels (AWS events) shows here.
        chats.append(ShellChat(name="slack"))
    # `run` leaves soon: it polls no queue and sweeps nothing (see `build_bot`).
    async with running_bot(
        config, settings, chats=chats, one_shot=text is not None, **kwargs
    ) as bot:
        if text is None:
            return await shell_loop(bot, chat, member)
        return await run_text(bot, chat, member, text)


def _demo_member(config: Config, requested: str | None) -> str:
    if requested:
        return requested
    member = _default_member()
    return member if member in config.access.members else "local:alice"


def _client_environment(url: str) -> dict[str, str]:
    """What an AWS client (kajitori, the AWS CLI) needs to talk to the sandbox: its endpoint,
    the region, and credentials, which the sandbox accepts whatever they are."""
    from sandbox import REGION

    return {
        "AWS_ENDPOINT_URL": url,
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "demo",
        "AWS_SECRET_ACCESS_KEY": "demo",
    }


async def _start_demo_world(
    port: int, folder: Path, *, with_database: bool = True
) -> tuple[Sandbox, DemoDatabase | None, str]:
    """The seeded AWS sandbox and, when MariaDB and sshd are installed (and wanted), the
    demo database, started side by side; the last item says whether `db open` and `sql` work."""
    from sandbox import Sandbox
    from sandbox.demo import start_demo_database

    async def no_database() -> tuple[None, str]:
        return None, "database main: not started for this command"

    sandbox = Sandbox(port=port)
    started, database_started = await asyncio.gather(
        asyncio.to_thread(sandbox.start),
        asyncio.to_thread(start_demo_database, folder / "database")
        if with_database
        else no_database(),
        return_exceptions=True,
    )
    if isinstance(database_started, BaseException):
        await asyncio.to_thread(sandbox.stop)
        raise database_started
    database, note = database_started
    if isinstance(started, BaseException):
        if database is not None:
            await asyncio.to_thread(database.stop)
        raise started
    return sandbox, database, note


async def _demo(args: argparse.Namespace) -> int:
    from bot.config import parse_config
    from sandbox.demo import demo_config_data

    # `kill` ends the demo as Ctrl-C does: MariaDB and sshd stop, the folder goes.
    main = asyncio.current_task()
    assert main is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main.cancel)
    with tempfile.TemporaryDirectory(prefix="kajitori-demo-") as name:
        folder = Path(name)
        # One command that is not about databases does without MariaDB and sshd.
        first = (args.text or "").split()[:1]
        wanted = args.text is None or first in (["db"], ["sql"])
        sandbox, database, note = await _start_demo_world(0, folder, with_database=wanted)
        try:
            os.environ.update(_client_environment(sandbox.url))
            config = parse_config(demo_config_data(database, store=f"sqlite:///{folder}/state.db"))
            member = _demo_member(config, args.as_member)
            print(f"AWS sandbox at {sandbox.url}; {note}")
            print(f"you are {member} (`as bob` in the shell, or --as, to change)")
            return await _with_bot(config, member, args.text)
        finally:
            if database is not None:
                await asyncio.to_thread(database.stop)
            await asyncio.to_thread(sandbox.stop)


async def _sandbox(args: argparse.Namespace) -> int:
    import yaml

    from sandbox.demo import demo_config_data

    # Set first: `kill` (and Ctrl-C) stop MariaDB and sshd and remove the folder even while
    # they start, never leaving them behind.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(signum, stop.set)
    folder = Path(tempfile.mkdtemp(prefix="kajitori-sandbox-"))
    try:
        sandbox, database, note = await _start_demo_world(args.port, folder)
        try:
            config = folder / "demo.yaml"
            data = demo_config_data(database, store=f"sqlite:///{folder}/state.db")
            config.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
            # Every line is shell: `. FILE` or `eval` takes the exports and skips the comments.
            environment = {**_client_environment(sandbox.url), "KAJITORI_CONFIG": str(config)}
            for key, value in environment.items():
                print(f"export {key}={shlex.quote(value)}")
            print(f"# {note}")
            print(f"# demo config: {config} (examples/demo.yaml, pointed at this sandbox)")
            print("# ready; Ctrl-C stops the sandbox", flush=True)
            await stop.wait()
        finally:
            if database is not None:
                await asyncio.to_thread(database.stop)
            await asyncio.to_thread(sandbox.stop)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return EXIT_OK


async def _serve(args: argparse.Namespace) -> int:
    from adapters.bootstrap import serve

    config = _load(args.config)
    await serve(
        config,
        Settings(),
        host=args.host,
        port=args.port,
        socket_mode=args.socket_mode,
        metrics_port=args.metrics_port,
    )
    return EXIT_OK


def _check_config(args: argparse.Namespace) -> int:
    path = args.config or default_config_path()
    try:
        config = load_config(path)
    except ConfigError as error:
        for line in error.errors:
            print(line, file=sys.stderr)
        print(f"{path}: {len(error.errors)} error(s)", file=sys.stderr)
        return EXIT_FAILED
    problems = config_problems(config)
    if problems:
        for line in problems:
            print(line, file=sys.stderr)
        print(f"{path}: {len(problems)} error(s)", file=sys.stderr)
        return EXIT_FAILED
    services = sum(len(e.services) for e in config.environments.values())
    print(f"{path}: ok ({len(config.environments)} environments, {services} services)")
    roles = [name for name, env in config.environments.items() if env.aws]
    if roles:
        print(f"roles to assume: {', '.join(roles)}; `kajitori doctor` checks them against AWS")
    return EXIT_OK


async def _doctor(args: argparse.Namespace) -> int:
    from adapters.aws.doctor import COLUMNS, report_rows

    config = _load(args.config)
    checks = await doctor(config, Settings())
    print(render_table(Table(columns=COLUMNS, rows=report_rows(checks))))
    failed = [c.env for c in checks if not c.ok]
    if failed:
        print(f"AWS access not right for: {', '.join(failed)}", file=sys.stderr)
        return EXIT_FAILED
    print(f"AWS access ok for {len(checks)} environment(s)")
    return EXIT_OK


async def _iam_policy(args: argparse.Namespace) -> int:
    import json

    from adapters.aws.iam_policy import cloudformation

    config = _load(args.config)
    if args.env is not None and args.env not in config.environments:
        known = ", ".join(config.environments)
        print(f"unknown environment {args.env!r} (known: {known})", file=sys.stderr)
        return EXIT_USAGE
    envs = [args.env] if args.env else list(config.environments)
    generated = await generate_policies(config, Settings(), envs)
    for note in generated.notes:
        print(f"note: {note}", file=sys.stderr)
    policies = generated.policies
    if args.env:
        account = generated.accounts[args.env]
        policies = {account: policies[account]}
    if args.format == "cloudformation":
        if len(policies) > 1:
            accounts = ", ".join(policies)
            print(
                f"the config spans several accounts ({accounts}): one stack per account, "
                "pick its environment with --env",
                file=sys.stderr,
            )
            return EXIT_USAGE
        [(account, policy)] = policies.items()
        template = cloudformation(policy, account, generated.external_ids.get(account, []))
        print(json.dumps(template, indent=2))
        return EXIT_OK
    # One account: the policy document itself; several: one document per account id.
    output = next(iter(policies.values())) if len(policies) == 1 else policies
    print(json.dumps(output, indent=2))
    return EXIT_OK


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="kajitori", description="ChatOps for services on AWS")
    sub = top.add_subparsers(dest="command", required=True)

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument(
            "--config", help="config file (default: $KAJITORI_CONFIG or ./kajitori.yaml)"
        )
        return p

    serve = with_config(
        sub.add_parser("serve", help="the HTTP server for Slack, Typetalk and webhooks")
    )
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--port", type=int, default=3000)
    serve.add_argument(
        "--socket-mode", action="store_true", help="connect to Slack over Socket Mode"
    )
    serve.add_argument(
        "--metrics-port",
        type=int,
        help="serve GET /metrics on this port (same host) instead of the main one",
    )
    shell = with_config(sub.add_parser("shell", help="a local chat session in the terminal"))
    shell.add_argument("--as", dest="as_member", help="member id (default local:$USER)")
    run = with_config(sub.add_parser("run", help="run one chat command and print the reply"))
    run.add_argument("--as", dest="as_member", help="member id (default local:$USER)")
    run.add_argument("text", help='the command, e.g. "status api staging"')
    demo = sub.add_parser("demo", help="the AWS sandbox seeded with a demo, then the shell")
    demo.add_argument("--as", dest="as_member", help="member id (default local:alice)")
    demo.add_argument("text", nargs="?", help="run this one command instead of the shell")
    sandbox = sub.add_parser("sandbox", help="the seeded AWS sandbox alone")
    sandbox.add_argument("--port", type=int, default=5055)
    with_config(sub.add_parser("check-config", help="validate the config file"))
    with_config(sub.add_parser("doctor", help="check each environment's AWS access, as a table"))
    policy = with_config(
        sub.add_parser(
            "iam-policy", help="the least-privilege IAM policy for what the config names"
        )
    )
    policy.add_argument("--env", help="only this environment (and its account)")
    policy.add_argument("--format", choices=("json", "cloudformation"), default="json")
    return top


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; without `argv`, this process's own, which exits when it returns."""
    args = parser().parse_args(argv)
    if argv is None and args.command == "run":
        # `run` answers one command and leaves: what is loaded by now (every module) lives as
        # long as the process, and out of the collector's reach it is not walked again by
        # the collections while the command runs.
        gc.freeze()
    code = _command(args)
    if argv is None:
        # What the command built lives until the process exits, which comes next: out of the
        # collector's reach, it is not walked again by the interpreter's last collections
        # (every module, botocore's models, the config), which cost more CPU than the
        # command itself.
        gc.freeze()
    return code


def _command(args: argparse.Namespace) -> int:
    level = os.environ.get("KAJITORI_LOG_LEVEL", "WARNING")
    if args.command == "serve" and os.environ.get("KAJITORI_LOG_FORMAT", "json") == "json":
        # The server's logs go to a collector: one JSON object per line, with job ids.
        from bot.logs import json_handler

        logging.basicConfig(level=level, handlers=[json_handler(sys.stderr)])
    else:
        logging.basicConfig(
            level=level,
            format="%(asctime)s %(levelname)s %(name)s %(message)s",
            stream=sys.stderr,
        )
    try:
        if args.command == "check-config":
            return _check_config(args)
        if args.command == "demo":
            return asyncio.run(_demo(args))
        if args.command == "sandbox":
            return asyncio.run(_sandbox(args))
        if args.command == "serve":
            return asyncio.run(_serve(args))
        if args.command == "doctor":
            return asyncio.run(_doctor(args))
        if args.command == "iam-policy":
            return asyncio.run(_iam_policy(args))
        config = _load(args.config)
        member = args.as_member or _default_member()
        text = args.text if args.command == "run" else None
        return asyncio.run(_with_bot(config, member, text))
    except ConfigError as error:
        for line in error.errors:
            print(line, file=sys.stderr)
        return EXIT_FAILED
    except KajitoriError as error:
        print(str(error), file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
