"""Per-library configuration: typed, loaded from SSM Parameter Store (settings) and Secrets Manager."""

from illbridge.config.library import (
    LibraryConfig,
    ReShareSettings,
    StepSwitches,
    WmsSettings,
)
from illbridge.config.loader import ConfigStore

__all__ = ["ConfigStore", "LibraryConfig", "ReShareSettings", "StepSwitches", "WmsSettings"]
