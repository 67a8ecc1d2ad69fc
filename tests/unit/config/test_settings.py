"""The function environment is validated when a handler starts."""

import pytest

from illbridge.errors import InvalidSettings
from illbridge.settings import BridgeSettings

GOOD = {"TABLE_NAME": "bridge", "EVENT_BUS_NAME": "bus"}


def test_a_complete_environment_is_read_with_defaults() -> None:
    settings = BridgeSettings.from_environ(GOOD)
    assert settings.table_name == "bridge"
    assert settings.config_prefix == "/reshare-wms-bridge"
    assert settings.step_lease_seconds == 120


def test_a_missing_variable_is_named() -> None:
    with pytest.raises(InvalidSettings, match="EVENT_BUS_NAME"):
        BridgeSettings.from_environ({"TABLE_NAME": "bridge"})


def test_a_bad_value_is_named() -> None:
    with pytest.raises(InvalidSettings, match="STEP_LEASE_SECONDS"):
        BridgeSettings.from_environ({**GOOD, "STEP_LEASE_SECONDS": "zero"})
