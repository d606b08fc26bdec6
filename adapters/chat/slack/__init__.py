"""Slack: slash commands, mentions, threads, buttons, ephemeral answers and Socket Mode.

`setup` mounts POST /slack/events in `kajitori serve` and registers the Slack chat adapter
on the bot's notifier; `run_socket_mode` serves the same listeners over Socket Mode.
"""

from adapters.chat.slack.app import run_socket_mode, setup

__all__ = ["run_socket_mode", "setup"]
