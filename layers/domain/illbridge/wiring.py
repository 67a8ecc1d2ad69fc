"""The collaborators a workflow step needs, built once per function instance (lazily: no I/O at import)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from illbridge import timings
from illbridge.announce import AttentionTopic
from illbridge.bus import EventBus
from illbridge.config import ConfigStore, LibraryConfig
from illbridge.reshare.client import ReShareClient
from illbridge.settings import BridgeSettings, current_settings
from illbridge.store import BridgeStore
from illbridge.timeutil import utcnow

if TYPE_CHECKING:  # imported where a WMS client is built: lxml only in functions that speak NCIP
    from illbridge.wms.client import WmsClient


def _fingerprint(config: LibraryConfig) -> str:
    """Changes whenever any setting or secret of the library changes (so rotated secrets take effect)."""
    secrets = (
        config.wms.wskey_secret.get_secret_value(),
        config.reshare.password.get_secret_value(),
    )
    return hashlib.sha256((config.model_dump_json() + "|".join(secrets)).encode()).hexdigest()


class Ports:
    """What ``workflow/`` and ``intake/`` are given: the store, the bus, staff's topic, the libraries'
    configurations (and, for the webhook, only its secrets), the clock, the step lease and each library's WMS
    and ReShare client. Each entry there takes the narrow protocol it uses (``workflow/ports.py``,
    ``intake/ports.py``); this is the functions' one implementation of them all, read through the process's
    ``Services`` (so what is built is built once, lazily, and a clock or client factory set on the services,
    as the sandbox and the tests do, is the one the ports use)."""

    __slots__ = ("_services",)

    def __init__(self, services: Services) -> None:
        self._services = services

    @property
    def store(self) -> BridgeStore:
        return self._services.store

    @property
    def bus(self) -> EventBus:
        return self._services.bus

    @property
    def topic(self) -> AttentionTopic | None:
        return self._services.topic

    @property
    def configs(self) -> ConfigStore:
        return self._services.configs

    @property
    def webhook_configs(self) -> ConfigStore:
        return self._services.webhook_configs

    @property
    def step_lease_seconds(self) -> float:
        return self._services.step_lease_seconds

    def clock(self) -> datetime:
        return self._services.clock()

    def wms(self, config: LibraryConfig) -> WmsClient:
        return self._services.wms(config)

    def reshare(self, config: LibraryConfig) -> ReShareClient:
        return self._services.reshare(config)


@dataclass
class Services:
    """The wiring of one function instance: its settings, and what it builds from them (clients per library
    with the function's budgets). The handlers and ``illbridge.staff`` hold it; what they hand to intake and
    the workflow is ``ports``."""

    settings: BridgeSettings
    configs: ConfigStore
    store: BridgeStore
    bus: EventBus
    clock: Callable[[], datetime] = utcnow
    topic: AttentionTopic | None = None  # staff's notices (None: none are sent, e.g. in unit tests)
    # library id -> (fingerprint, client, the configuration it was built for)
    _reshare: dict[str, tuple[str, ReShareClient, LibraryConfig]] = field(default_factory=dict)
    _wms: dict[str, tuple[str, WmsClient, LibraryConfig]] = field(default_factory=dict)
    reshare_factory: Callable[[LibraryConfig], Any] = lambda config: ReShareClient(config.reshare)
    wms_factory: Callable[[LibraryConfig], Any] = lambda config: wms_client(None, config)

    _webhook_configs: ConfigStore | None = None
    ports: Ports = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.ports = Ports(self)

    @property
    def step_lease_seconds(self) -> float:
        return self.settings.step_lease_seconds

    @property
    def webhook_configs(self) -> ConfigStore:
        """The libraries as the public webhook may read them: each one's webhook secret (signing secrets and
        the ReShare password), never the library secret with the WSKey secret (config/loader.py). The webhook
        reads configuration only through this; its role can read nothing else (template.yaml)."""
        if self._webhook_configs is None:
            configs = self.configs
            self._webhook_configs = ConfigStore(
                configs.prefix,
                max_age=configs.max_age,
                ssm=configs.ssm,
                secrets=configs.secrets,
                scope="webhook",
            )
        return self._webhook_configs

    def reshare(self, config: LibraryConfig) -> ReShareClient:
        return self._client(self._reshare, config, self.reshare_factory)

    def wms(self, config: LibraryConfig) -> WmsClient:
        return self._client(self._wms, config, self.wms_factory)

    @staticmethod
    def _client(
        cache: dict[str, tuple[str, Any, LibraryConfig]], config: LibraryConfig, factory: Callable
    ) -> Any:
        """One client per library, built again only when its settings or secrets changed."""
        cached = cache.get(config.library_id)
        if cached is not None and cached[2] is config:  # the configuration cached since (ConfigStore.get)
            return cached[1]
        fingerprint = _fingerprint(config)
        if cached is None or cached[0] != fingerprint:
            cached = (fingerprint, factory(config), config)
        else:
            cached = (fingerprint, cached[1], config)
        cache[config.library_id] = cached
        return cached[1]

    @classmethod
    def from_settings(cls, settings: BridgeSettings) -> Services:
        """The services of a function, every outbound client within the function's budgets (``timings``)."""
        return cls(
            settings=settings,
            configs=ConfigStore(settings.config_prefix, max_age=settings.config_max_age_seconds),
            store=BridgeStore(
                settings.table_name,
                history_ttl_days=settings.history_ttl_days,
                botocore_config=timings.botocore_config(settings),
            ),
            bus=EventBus(settings.event_bus_name, timings=timings.bus_timings(settings)),
            topic=AttentionTopic(
                settings.attention_topic_arn, botocore_config=timings.botocore_config(settings)
            )
            if settings.attention_topic_arn
            else None,
            reshare_factory=lambda config: reshare_client(settings, config),
            wms_factory=lambda config: wms_client(settings, config),
        )


def reshare_client(settings: BridgeSettings, config: LibraryConfig) -> ReShareClient:
    """A library's ReShare client with the function's ReShare budget (timeouts, read tries)."""
    return ReShareClient(
        config.reshare,
        timeout=(settings.reshare_connect_timeout, settings.reshare_read_timeout),
        read_retries=settings.reshare_read_tries - 1,
        backoff=settings.reshare_backoff_seconds,
    )


def wms_client(settings: BridgeSettings | None, config: LibraryConfig) -> WmsClient:
    """A library's WMS client; its read timeout (``wms.timeout_seconds``) capped by the function's budget
    (None: the client's own defaults)."""
    from illbridge.wms.client import WmsClient

    if settings is None:
        return WmsClient(config.wms)
    read = timings.wms_read_timeout(settings, config.wms.timeout_seconds)
    capped = config.wms.model_copy(update={"timeout_seconds": read})
    return WmsClient(capped, connect_timeout=min(settings.wms_connect_timeout, read))


@lru_cache(maxsize=1)
def current_services() -> Services:
    """The services of this function instance, built at the first handler call."""
    return Services.from_settings(current_settings())


def current_ports() -> Ports:
    """The ports of this function instance (of ``current_services``), for intake and the workflow."""
    return current_services().ports
