"""The production Serve config points at the real builder with valid settings."""

from pathlib import Path

import yaml

from serve_app.settings import Settings

CONFIG = Path(__file__).resolve().parents[2] / "deployments" / "serve_config.yaml"


def test_config_imports_the_builder_and_its_args_are_valid_settings():
    config = yaml.safe_load(CONFIG.read_text())
    (app,) = config["applications"]
    module, attribute = app["import_path"].split(":")
    builder = getattr(__import__(module, fromlist=[attribute]), attribute)
    assert callable(builder)
    settings = Settings.load({k: str(v) for k, v in app["args"].items()}, environ={})
    assert config["http_options"]["port"] == 8080
    assert config["http_options"]["request_timeout_s"] > settings.request_timeout_s
