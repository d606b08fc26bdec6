from pathlib import Path

import pytest
import yaml

from adapters.cli import main
from bot.config import Settings, load_config, parse_config
from bot.errors import ConfigError
from tests.conftest import DEMO_CONFIG, demo_data


def test_demo_config_is_valid() -> None:
    config = load_config(DEMO_CONFIG)
    assert config.environments["production"].protected
    assert config.service("api", "staging").kind == "ecs"


def test_every_error_names_its_key_path() -> None:
    data = demo_data()
    del data["environments"]["staging"]["services"]["api"]["ecs"]["cluster"]
    data["environments"]["production"]["regoin"] = "x"
    data["access"]["members"]["local:erin"] = ["wizard"]
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    assert caught.value.errors == [
        "environments.staging.services.api.ecs.cluster: field required",
        "environments.production.regoin: unknown key (did you mean 'region'?)",
    ]


def test_unknown_roles_and_trigger_targets_are_reported() -> None:
    data = demo_data()
    data["access"]["members"]["local:erin"] = ["wizard"]
    data["triggers"] = [{"ci": "jenkins", "deploy": {"service": "nope", "env": "staging"}}]
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    assert "access.members.local:erin: unknown role 'wizard'" in caught.value.errors
    assert "triggers.0.deploy.service: unknown service 'nope'" in caught.value.errors


def test_a_service_is_exactly_one_kind() -> None:
    data = demo_data()
    data["environments"]["staging"]["services"]["api"]["asg"] = {"name": "x"}
    with pytest.raises(ConfigError, match="exactly one of ecs, fleet or asg"):
        parse_config(data)


def test_check_config_exits_non_zero_naming_the_misspelt_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = demo_data()
    fleet = data["environments"]["staging"]["services"]["web"]["fleet"]
    fleet["target_gruop"] = fleet.pop("target_group")
    path = tmp_path / "kajitori.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["check-config", "--config", str(path)]) == 1
    err = capsys.readouterr().err
    assert "environments.staging.services.web.fleet.target_gruop: unknown key" in err
    assert "environments.staging.services.web.fleet.target_group: field required" in err


def test_check_config_accepts_the_demo(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "--config", str(DEMO_CONFIG)]) == 0
    assert "ok" in capsys.readouterr().out


def _with_database(**changes: object) -> dict[str, object]:
    data = demo_data()
    database = {
        "reader": "main.cluster-ro.example",
        "database": "app",
        "admin_secret": "env:ADMIN",
        "bastion": {"host": "b", "user": "u", "key_file": "k", "known_hosts": "h"},
        **changes,
    }
    data["environments"]["staging"]["databases"] = {"main": database}
    return data


def test_sql_result_limits_take_sizes_with_units() -> None:
    config = parse_config(_with_database(max_result_bytes="20MB", max_cell_bytes="16KiB"))
    database = config.database("main", "staging")
    assert (database.max_result_bytes, database.max_cell_bytes) == (20_000_000, 16_384)
    default = parse_config(_with_database()).database("main", "staging")
    assert (default.max_result_bytes, default.max_cell_bytes) == (10_000_000, 64_000)


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"max_result_bytes": 0}, "max_result_bytes: expected a size greater than 0 bytes"),
        ({"max_result_bytes": "lots"}, "max_result_bytes: expected a size such as 10MB"),
        ({"max_cell_bytes": -1}, "max_cell_bytes: expected a size greater than 0 bytes"),
        ({"max_cell_bytes": "-1KB"}, "max_cell_bytes: expected a size such as 10MB"),
        (
            {"max_result_bytes": "1MB", "max_cell_bytes": "2MB"},
            "max_cell_bytes (2000000) must not be larger than max_result_bytes (1000000)",
        ),
    ],
)
def test_sql_result_limits_are_checked(changes: dict[str, object], says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(_with_database(**changes))
    assert any(says in error for error in caught.value.errors), caught.value.errors


def test_deploy_blocks_of_fleets_and_auto_scaling_groups_are_checked_with_key_paths() -> None:
    config = load_config(DEMO_CONFIG)
    web = config.service("web", "production").fleet_deploy
    assert web is not None and web.canary is not None
    assert web.canary.bake is None  # manual
    assert web.batch_size(20) == 10
    worker = config.service("worker", "staging").asg_deploy
    assert worker is not None and worker.image_parameter == "/app/worker/ami/{version}"

    data = demo_data()
    services = data["environments"]["staging"]["services"]
    services["web"]["deploy"] = {"ssm_document": "AWS-RunShellScript", "batch": "0%"}
    services["worker"]["deploy"] = {"checkpoints": [50, 10]}
    services["api"]["deploy"] = {"ssm_document": "api-deploy"}
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    errors = "\n".join(caught.value.errors)
    assert "environments.staging.services.web.deploy.fleet.batch: bad batch '0%'" in errors
    assert (
        "environments.staging.services.worker.deploy.asg: an asg deploy names exactly one of"
        in errors
    )
    assert "environments.staging.services.api: `deploy` is for fleet and asg services" in errors


def test_a_fleet_deploy_with_run_shell_script_needs_its_command() -> None:
    data = demo_data()
    data["environments"]["staging"]["services"]["web"]["deploy"] = {
        "ssm_document": "AWS-RunShellScript"
    }
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    assert caught.value.errors == [
        "environments.staging.services.web.deploy.fleet: `command` is needed with "
        "AWS-RunShellScript, like /opt/app/deploy.sh {version}"
    ]


def test_environment_aliases_resolve_in_any_case() -> None:
    config = load_config(DEMO_CONFIG)
    assert config.environment_name("PROD") == "production"
    assert config.environment_name("本番") == "production"
    assert config.environment_name("Staging") == "staging"
    assert config.service_name("API", "prod") == "api"


@pytest.mark.parametrize(
    ("aliases", "error"),
    [
        (
            {"staging": ["production"]},
            "environments.staging.aliases.0: 'production' is already environment 'production'",
        ),
        (
            {"staging": ["live"], "production": ["Live"]},
            "environments.production.aliases.0: 'Live' is already an alias of 'staging'",
        ),
        (
            {"production": ["prod", "PROD"]},
            "environments.production.aliases.1: 'PROD' is already an alias of 'production'",
        ),
        (
            {"production": ["pro duction"]},
            "environments.production.aliases.0: 'pro duction' is not one word"
            " (no spaces, no leading -)",
        ),
    ],
)
def test_an_alias_may_not_clash_with_an_environment_or_another_alias(
    aliases: dict[str, list[str]], error: str
) -> None:
    data = demo_data()
    for env, names in aliases.items():
        data["environments"][env]["aliases"] = names
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    assert caught.value.errors == [error]


def test_names_that_differ_only_in_case_are_refused() -> None:
    data = demo_data()
    data["environments"]["Staging"] = data["environments"]["staging"]
    data["environments"]["staging"]["services"]["API"] = {"asg": {"name": "x"}}
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    assert "environments.Staging: differs from 'staging' only in case" in caught.value.errors
    assert (
        "environments.staging.services.API: differs from 'api' only in case" in caught.value.errors
    )


def test_a_takeover_interval_of_half_the_lease_or_more_is_refused_with_the_reason() -> None:
    data = demo_data()
    data["jobs"] = {"lease": "1m", "takeover_interval": "30s"}
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    (error,) = caught.value.errors
    assert error.startswith("jobs: ") and "under half of `lease`" in error
    data["jobs"] = {"lease": "1m", "takeover_interval": "29s"}
    assert parse_config(data).jobs.takeover_interval.total_seconds() == 29


def test_settings_come_from_the_environment_in_any_case_and_arguments_win(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-from-the-environment")
    monkeypatch.setenv("aws_region", "eu-west-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("KAJITORI_UNRELATED", "ignored")
    settings = Settings(aws_endpoint_url="http://127.0.0.1:8")
    assert settings.slack_bot_token is not None
    assert settings.slack_bot_token.get_secret_value() == "xoxb-from-the-environment"
    assert settings.aws_region == "eu-west-1"
    assert settings.aws_endpoint_url == "http://127.0.0.1:8"
    assert settings.typetalk_token is None
    assert "xoxb-from-the-environment" in settings.secret_values()
