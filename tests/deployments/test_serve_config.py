"""The production Serve config points at the real builder with valid settings."""

from pathlib import Path

import yaml

from serve_app.settings import SAGEMAKER_PORT, Settings

CONFIG = Path(__file__).resolve().parents[2] / "deployments" / "serve_config.yaml"


def test_config_imports_the_builder_and_its_args_are_valid_settings():
    config = yaml.safe_load(CONFIG.read_text())
    (app,) = config["applications"]
    module, attribute = app["import_path"].split(":")
    builder = getattr(__import__(module, fromlist=[attribute]), attribute)
    assert callable(builder)
    settings = Settings.load({k: str(v) for k, v in app["args"].items()}, environ={})
    assert config["http_options"]["port"] == SAGEMAKER_PORT
    assert config["http_options"]["request_timeout_s"] > settings.request_timeout_s


def test_config_carries_only_what_differs_from_the_app_defaults_and_claims_nothing_of_the_container():
    config = yaml.safe_load(CONFIG.read_text())
    (app,) = config["applications"]
    defaults = Settings.load({}, environ={})
    given = Settings.load({k: str(v) for k, v in app["args"].items()}, environ={})
    repeated = sorted(name for name in app["args"] if getattr(given, name) == getattr(defaults, name))
    assert not repeated, f"{repeated} repeat the app's defaults (serve_app/settings.py): remove them"
    assert "does the same" not in CONFIG.read_text()
