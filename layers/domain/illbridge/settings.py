"""The environment a function runs in, as a typed model validated when the handler starts.

Domain code never reads ``os.environ``: it gets a ``BridgeSettings``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from illbridge.errors import InvalidSettings


class BridgeSettings(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    table_name: str = Field(alias="TABLE_NAME", min_length=1)
    event_bus_name: str = Field(alias="EVENT_BUS_NAME", min_length=1)
    attention_topic_arn: str = Field(default="", alias="ATTENTION_TOPIC_ARN")
    config_prefix: str = Field(default="/reshare-wms-bridge", alias="CONFIG_PREFIX", pattern=r"^/[\w./-]*$")
    config_max_age_seconds: int = Field(default=300, alias="CONFIG_MAX_AGE_SECONDS", ge=0)
    history_ttl_days: int = Field(default=400, alias="HISTORY_TTL_DAYS", ge=1)
    step_lease_seconds: float = Field(default=120, alias="STEP_LEASE_SECONDS", gt=0)
    # Outbound budgets (illbridge.timings; template.yaml sets them per function, tests/template checks them)
    reshare_connect_timeout: float = Field(default=5, alias="RESHARE_CONNECT_TIMEOUT", gt=0)
    reshare_read_timeout: float = Field(default=20, alias="RESHARE_READ_TIMEOUT", gt=0)
    reshare_read_tries: int = Field(default=2, alias="RESHARE_READ_TRIES", ge=1)
    wms_connect_timeout: float = Field(default=5, alias="WMS_CONNECT_TIMEOUT", gt=0)
    wms_max_read_timeout: float = Field(default=20, alias="WMS_MAX_READ_TIMEOUT", gt=0)
    aws_connect_timeout: float = Field(default=2, alias="AWS_CONNECT_TIMEOUT", gt=0)
    aws_read_timeout: float = Field(default=5, alias="AWS_READ_TIMEOUT", gt=0)
    aws_tries: int = Field(default=2, alias="AWS_TRIES", ge=1)
    bus_entry_tries: int = Field(default=2, alias="BUS_ENTRY_TRIES", ge=1)
    # Pauses between tries: the first one, then doubling (the ReShare client's capped at 4 s)
    reshare_backoff_seconds: float = Field(default=0.5, alias="RESHARE_BACKOFF_SECONDS", ge=0)
    bus_backoff_seconds: float = Field(default=0.2, alias="BUS_BACKOFF_SECONDS", ge=0)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> BridgeSettings:
        env = os.environ if environ is None else environ
        try:
            return cls.model_validate(dict(env))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
            )
            raise InvalidSettings(f"invalid function environment: {problems}") from exc


@lru_cache(maxsize=1)
def current_settings() -> BridgeSettings:
    """The settings of this function instance (validated once, at the first handler call)."""
    return BridgeSettings.from_environ()
