"""Slack: slash commands, mentions, threads, buttons, ephemeral answers and Socket Mode.

`connect` builds the Web API client and the chat adapter, `mount` adds POST /slack/events
to `kajitori serve`, and `run_socket_mode` serves the same listeners over Socket Mode.
"""

from adapters.chat.slack.app import SlackConnection, connect, mount, run_socket_mode

__all__ = ["SlackConnection", "connect", "mount", "run_socket_mode"]
