"""The service-model loader answers as botocore's own, without listing every service's
folder to say whether one service is known."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from botocore.exceptions import UnknownServiceError
from botocore.loaders import Loader
from botocore.session import Session

from adapters.aws.loader import ServiceModels, install

KINDS = ("service-2", "endpoint-rule-set-1", "waiters-2", "paginators-1")


@pytest.mark.parametrize("kind", KINDS)
def test_it_knows_the_services_botocore_knows_and_no_other(kind: str) -> None:
    botocore_list = Loader().list_available_services(kind)
    known = ServiceModels().list_available_services(kind)
    asked = [name for name in Loader().list_available_services("service-2") if name in known]
    assert asked == botocore_list
    for name in ("nope", "", ".", "..", "ecs/2014-11-13", "../data/ecs", "ECS"):
        assert name not in known
    assert list(known) == botocore_list
    assert len(known) == len(botocore_list)
    assert known[0] == botocore_list[0]


def test_an_unknown_service_is_refused_with_botocore_s_error_naming_the_known_ones() -> None:
    with pytest.raises(UnknownServiceError) as raised:
        ServiceModels().load_service_model("ecz", "service-2")
    assert "ecs" in str(raised.value)
    assert ServiceModels().load_service_model("ecs", "service-2")["metadata"]["serviceId"] == "ECS"


def test_models_in_aws_data_path_are_found_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = {
        "version": "2.0",
        "metadata": {"apiVersion": "2024-01-01", "endpointPrefix": "example", "protocol": "json"},
        "operations": {},
        "shapes": {},
    }
    folder = tmp_path / "example" / "2024-01-01"
    folder.mkdir(parents=True)
    (folder / "service-2.json").write_text(json.dumps(model))
    monkeypatch.setenv("AWS_DATA_PATH", str(tmp_path))
    session = Session()
    install(session)
    loader = session.get_component("data_loader")
    assert isinstance(loader, ServiceModels)
    assert "example" in loader.list_available_services("service-2")
    assert loader.load_service_model("example", "service-2") == model
    assert "example" in list(loader.list_available_services("service-2"))
