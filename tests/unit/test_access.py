import pytest

from bot.access import AccessRules, permission_allows
from bot.config import parse_config
from bot.errors import Refused
from bot.redaction import Redactor
from tests.conftest import demo_data


@pytest.mark.parametrize(
    ("pattern", "command", "env", "allowed"),
    [
        ("*", "deploy", "production", True),
        ("deploy:staging", "deploy", "staging", True),
        ("deploy:staging", "deploy", "production", False),
        ("deploy:staging", "rollback", "staging", False),
        ("db:*", "db", "production", True),
        ("status", "status", "production", True),
        ("status", "status", None, True),
        ("deploy:*", "deploy", None, True),
        ("deploy:prod*", "deploy", "production", True),
        ("deploy:staging", "deploy", None, False),
    ],
)
def test_permission_patterns(pattern: str, command: str, env: str | None, allowed: bool) -> None:
    assert permission_allows(pattern, command, env) is allowed


def test_roles_and_channels() -> None:
    rules = AccessRules(parse_config(demo_data()))
    assert rules.allows("local:carol", "deploy", "staging")
    assert not rules.allows("local:carol", "deploy", "production")
    assert rules.is_approver("local:bob") and not rules.is_approver("local:carol")
    with pytest.raises(Refused, match="lacks permission status:production"):
        rules.check_permission("local:dave", "status", "production")
    with pytest.raises(Refused, match="not a member"):
        rules.check_member("slack:UNKNOWN")
    rules.check_channel("slack:C0DEMO")
    with pytest.raises(Refused, match="not accepted in slack:CRANDOM"):
        rules.check_channel("slack:CRANDOM")


def test_redaction_removes_known_and_shaped_secrets() -> None:
    redactor = Redactor(["s3cr3t-value"])
    text = redactor.text(
        "token xoxb-1234567890-abcdef and s3cr3t-value, AKIAABCDEFGHIJKLMNOP, "
        "password=hunter22 CREATE USER x IDENTIFIED BY 'pw123456' mysql -pLongPass1"
    )
    for secret in (
        "xoxb-1234567890",
        "s3cr3t-value",
        "AKIAABCDEFGHIJKLMNOP",
        "hunter22",
        "pw123456",
        "LongPass1",
    ):
        assert secret not in text
    assert "password=[redacted]" in text


def test_redaction_masks_secrets_inside_json_and_reprs() -> None:
    redactor = Redactor()
    text = redactor.text(
        '{"username": "admin", "password": "p@ss\\"w0rd!"} '
        "{'SecretString': '{\"password\": \"abc\"}', 'Name': 'kajitori/main/admin'}"
    )
    assert "p@ss" not in text and "w0rd" not in text and "abc" not in text
    assert '"username": "admin"' in text and "kajitori/main/admin" in text
    assert redactor.text("api-production:3 rolled out") == "api-production:3 rolled out"
