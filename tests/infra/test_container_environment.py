"""The container environment and isolation the stack renders, per source of the weights.

Weights SageMaker puts into /opt/ml/model (model_data_url, an uncompressed model_data_source, or
weights built into the image) are what the container serves: Terraform then names no Hub id
(SDTURBO_MODEL would win over the entrypoint's /opt/ml/model detection) and turns network
isolation on. The start-up deadline the app enforces is derived from SageMaker's start-up
health-check timeout, one value. Evaluated with ``terraform console`` (offline, no plan).
"""

from __future__ import annotations

import pytest

from serve_app.settings import Settings

from .tfhelpers import console_values

EXPRESSIONS = ["local.container_environment", "local.network_isolation"]


def render(tmp_path, name: str, variables: dict[str, str]) -> tuple[dict[str, str], bool]:
    environment, isolation = console_values(tmp_path / name, EXPRESSIONS, variables)
    return environment, isolation


@pytest.mark.parametrize(
    "weights",
    [
        {"model_data_url": "s3://acme-models/sd-turbo/model.tar.gz"},
        {"model_data_source": "s3://acme-models/sd-turbo/"},
        {"weights_in_image": "true"},
    ],
    ids=["model_data_url", "model_data_source", "weights_in_image"],
)
def test_given_weights_are_served_from_the_model_directory_without_network(tmp_path, weights):
    environment, isolation = render(tmp_path, "weights", weights)
    assert "SDTURBO_MODEL" not in environment, environment  # the entrypoint serves /opt/ml/model
    assert environment["SDTURBO_OFFLINE"] == "1"
    assert isolation is True


def test_without_weights_the_hub_model_is_the_default_and_the_network_stays(tmp_path):
    environment, isolation = render(tmp_path, "hub", {})
    assert environment["SDTURBO_MODEL"] == "stabilityai/sd-turbo"
    assert "SDTURBO_OFFLINE" not in environment
    assert isolation is False


def test_a_hub_id_with_weights_is_possible_only_when_named(tmp_path):
    environment, isolation = render(
        tmp_path, "named", {"model_data_url": "s3://acme-models/m.tar.gz", "model_id": "/opt/ml/model/other",
                            "enable_network_isolation": "false"},
    )
    assert environment["SDTURBO_MODEL"] == "/opt/ml/model/other"
    assert isolation is False


def test_the_start_up_deadline_derives_from_sagemakers_health_check_timeout(tmp_path):
    environment, _ = render(tmp_path, "default", {})
    # The app's own default is the value Terraform derives from the default timeout (900 - 60),
    # so `serve` outside SageMaker and the endpoint agree.
    assert float(environment["SDTURBO_STARTUP_DEADLINE_S"]) == Settings().startup_deadline_s == 840
    longer, _ = render(tmp_path, "longer", {"container_startup_health_check_timeout_in_seconds": "1800"})
    assert longer["SDTURBO_STARTUP_DEADLINE_S"] == "1740"
