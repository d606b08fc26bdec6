"""The app manifest in the repo matches what `kajitori serve` expects."""

from __future__ import annotations

from pathlib import Path

import yaml

from adapters.chat.slack.app import EVENTS_PATH
from bot.config import SlackConfig
from tests.conftest import demo_data

MANIFEST = Path(__file__).parent.parent.parent / "slack" / "manifest.yaml"


def test_manifest_routes_everything_to_the_one_request_url() -> None:
    manifest = yaml.safe_load(MANIFEST.read_text())
    command = manifest["features"]["slash_commands"][0]
    assert command["command"] == SlackConfig().command == demo_data()["slack"]["command"]
    settings = manifest["settings"]
    urls = [
        command["url"],
        settings["event_subscriptions"]["request_url"],
        settings["interactivity"]["request_url"],
    ]
    assert all(url.endswith(EVENTS_PATH) for url in urls)
    assert settings["event_subscriptions"]["bot_events"] == ["app_mention"]
    assert settings["interactivity"]["is_enabled"] is True
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    assert {"commands", "app_mentions:read", "chat:write", "files:write"} <= scopes
