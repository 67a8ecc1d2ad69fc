"""docs/deploy.md's example library is one the functions accept, under the names the functions read."""

from __future__ import annotations

import json
import re
from pathlib import Path

from illbridge.config.loader import index_parameter, secret_name, settings_parameter, webhook_secret_name
from sandbox.demo import validate

DOC = (Path(__file__).resolve().parents[3] / "docs" / "deploy.md").read_text(encoding="utf-8")
BLOCKS = [json.loads(block) for block in re.findall(r"```json\n(.*?)```", DOC, flags=re.DOTALL)]
PREFIX = "/reshare-wms-bridge"  # "/" + the template's default ConfigName, as deployed by the guide


def test_the_example_settings_and_secret_validate_as_the_functions_validate_them() -> None:
    libraries, settings, secret, webhook = BLOCKS
    config = validate(settings, {**secret, **webhook})
    assert libraries == [config.library_id] == ["east"]
    assert config.wms.wskey_secret.get_secret_value() == secret["wskey_secret"]
    assert len(config.webhook_secrets) == 1
    # the webhook's secret holds no WSKey secret, the library secret no webhook secret
    assert "wskey_secret" not in webhook and "webhook_secrets" not in secret
    assert webhook["reshare_password"] == secret["reshare_password"]


def test_the_guide_names_the_parameters_and_the_secret_the_loader_reads() -> None:
    for name in (
        index_parameter(PREFIX),
        settings_parameter(PREFIX, "east"),
        secret_name(PREFIX, "east"),
        webhook_secret_name(PREFIX, "east"),
    ):
        assert f"--name {name} " in DOC, name
