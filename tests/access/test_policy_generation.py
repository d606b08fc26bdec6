"""The `aws:` block of an environment is validated with its key path; the policy generator
scopes each account's policy to that account's environments, adds what kajitori itself
needs where it runs, and its CloudFormation output passes cfn-lint; the CLI answers bad
input with exit code 2 and runs `doctor` and `iam-policy` against the sandbox."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from adapters.aws.iam_policy import (
    EcsFacts,
    EnvFacts,
    RuntimeFacts,
    account_policy,
    cloudformation,
    dynamodb_table,
    policies,
)
from bot.config import parse_config
from bot.errors import ConfigError
from tests.access.test_accounts import ROLE, two_account_data
from tests.conftest import demo_data
from tests.support.aws_calls import Check, allows

ROOT = Path(__file__).parent.parent.parent


def config_errors(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    return caught.value.errors


def test_an_environment_role_that_is_not_a_role_arn_is_named_by_its_key_path() -> None:
    data = demo_data()
    data["environments"]["production"]["aws"] = {"role_arn": "kajitori"}
    [error] = config_errors(data)
    assert error.startswith("environments.production.aws: role_arn 'kajitori' is not an IAM role")


def test_an_account_id_other_than_the_roles_is_refused() -> None:
    data = demo_data()
    data["environments"]["production"]["aws"] = {"role_arn": ROLE, "account_id": "111111111111"}
    [error] = config_errors(data)
    assert "account_id 111111111111 is not the account of role_arn (210987654321)" in error


def test_session_duration_and_refresh_margin_stay_within_awss_limits() -> None:
    data = demo_data()
    data["aws"] = {"session_duration": "10m"}
    assert config_errors(data) == [
        "aws: session_duration must be between 15m and 12h (AWS's limits)"
    ]
    data["aws"] = {"session_duration": "1h", "refresh_margin": "1h"}
    assert "refresh_margin must be above 0" in config_errors(data)[0]


def test_unknown_keys_in_the_aws_block_get_a_suggestion() -> None:
    data = demo_data()
    data["environments"]["production"]["aws"] = {"role_arn": ROLE, "externl_id": "x"}
    assert config_errors(data) == [
        "environments.production.aws.externl_id: unknown key (did you mean 'external_id'?)"
    ]


def facts(env: str, account: str, role: str | None) -> EnvFacts:
    return EnvFacts(
        env=env,
        account=account,
        region="ap-northeast-1",
        role_arn=role,
        ecs=[
            EcsFacts(
                cluster=env,
                service="api",
                family=f"api-{env}",
                roles=[f"arn:aws:iam::{account}:role/api-{env}-task"],
                repository=(account, "ap-northeast-1", "api"),
            )
        ],
    )


def test_each_account_gets_only_its_environments_and_the_runtime_its_own_needs() -> None:
    config = parse_config(two_account_data())
    runtime = RuntimeFacts(
        account="123456789012",
        table=dynamodb_table("dynamodb://kajitori?region=ap-northeast-1", "us-east-1"),
        roles=[ROLE],
    )
    both = policies(
        config,
        [facts("staging", "123456789012", None), facts("production", "210987654321", ROLE)],
        runtime,
    )
    assert list(both) == ["123456789012", "210987654321"]
    home, other = both["123456789012"], both["210987654321"]
    staging = "arn:aws:ecs:ap-northeast-1:123456789012:service/staging/api"
    production = "arn:aws:ecs:ap-northeast-1:210987654321:service/production/api"
    assert allows(home, Check("ecs:UpdateService", staging))
    assert not allows(home, Check("ecs:UpdateService", production))
    assert allows(other, Check("ecs:UpdateService", production))
    assert not allows(other, Check("ecs:UpdateService", staging))
    # kajitori's own table and the roles it assumes: in the account it runs in only.
    table = "arn:aws:dynamodb:ap-northeast-1:123456789012:table/kajitori"
    assert allows(home, Check("dynamodb:PutItem", table))
    assert allows(home, Check("dynamodb:Query", f"{table}/index/running"))
    assert allows(home, Check("sts:AssumeRole", ROLE))
    assert not allows(home, Check("sts:AssumeRole", "arn:aws:iam::210987654321:role/admin"))
    assert not allows(other, Check("dynamodb:PutItem", table))
    assert not any(
        a.startswith(("sts:", "dynamodb:")) for s in other["Statement"] for a in s["Action"]
    )


def test_the_cloudformation_role_passes_cfn_lint_and_trusts_the_principal_with_the_external_id(
    tmp_path: Path,
) -> None:
    policy = account_policy([facts("production", "210987654321", ROLE)])
    template = cloudformation(policy, "210987654321", ["kajitori-test"])
    trust = template["Resources"]["KajitoriRole"]["Properties"]["AssumeRolePolicyDocument"]
    assert trust["Statement"][0]["Principal"] == {"AWS": {"Ref": "TrustedPrincipalArn"}}
    assert trust["Statement"][0]["Condition"] == {
        "StringEquals": {"sts:ExternalId": "kajitori-test"}
    }
    text = json.dumps(template)
    assert "210987654321" not in text and "${AWS::AccountId}" in text
    path = tmp_path / "role.json"
    path.write_text(text)
    lint = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "cfn-lint"), str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_the_stack_templates_pass_cfn_lint() -> None:
    lint = subprocess.run(
        [
            str(ROOT / ".venv" / "bin" / "cfn-lint"),
            "deploy/cloudformation/kajitori.yaml",
            "deploy/dynamodb-table.yaml",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr


def kajitori(*args: str, sandbox: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "adapters.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT), "AWS_ENDPOINT_URL": sandbox.url},
        cwd=ROOT,
        check=False,
    )


def test_iam_policy_for_an_unknown_environment_is_a_usage_error(
    sandbox: Any, tmp_path: Path
) -> None:
    result = kajitori(
        "iam-policy", "--config", "examples/demo.yaml", "--env", "qa", sandbox=sandbox
    )
    assert result.returncode == 2
    assert "unknown environment 'qa' (known: staging, production)" in result.stderr


@pytest.mark.timeout(600)
def test_doctor_and_iam_policy_from_the_command_line(sandbox: Any, tmp_path: Path) -> None:
    doctor = kajitori("doctor", "--config", "examples/demo.yaml", sandbox=sandbox)
    assert doctor.returncode == 0, doctor.stderr
    assert "✓ 123456789012" in doctor.stdout and "api ✓" in doctor.stdout
    one = kajitori(
        "iam-policy", "--config", "examples/demo.yaml", "--env", "staging", sandbox=sandbox
    )
    assert one.returncode == 0, one.stderr
    policy = json.loads(one.stdout)
    resources = json.dumps(policy)
    assert "service/staging/api" in resources and "production" not in resources
    data = demo_data()
    data["environments"]["staging"]["services"]["api"]["ecs"]["service"] = "nowhere"
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(data))
    failed = kajitori("doctor", "--config", str(broken), sandbox=sandbox)
    assert failed.returncode == 1
    assert "api ✗" in failed.stdout and "AWS access not right for: staging" in failed.stderr
    assert "Traceback" not in failed.stderr
