"""What each way in is given: the narrow ports it uses, instead of the wiring's service locator.

The functions pass ``illbridge.wiring.Ports`` (built once per process, lazily); each intake entry takes the
protocol below that names what it reaches, so a reader (and mypy) sees, for example, that the poller never
touches WMS and the webhook reads only the webhook secrets.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from illbridge.announce import Publisher
from illbridge.bus import EventBus
from illbridge.config import ConfigStore, LibraryConfig
from illbridge.reshare.client import ReShareClient
from illbridge.store import BridgeStore

if TYPE_CHECKING:  # the poller and the webhook never speak NCIP: no lxml for them
    from illbridge.wms.client import WmsClient


class Outbox(Protocol):
    """The store and the bus: delivering the outbox (``intake.outbox``), and putting a ReShare transition on the
    bus then recording it as seen (``intake.seen``)."""

    @property
    def store(self) -> BridgeStore: ...

    @property
    def bus(self) -> EventBus: ...


class ReShareClients(Protocol):
    """Each library's ReShare client (the host-LMS check of ``intake.checks`` needs no more)."""

    def reshare(self, config: LibraryConfig) -> ReShareClient: ...


class LibraryClients(ReShareClients, Protocol):
    """Each library's ReShare and WMS clients, within the function's budgets, and the clock (the checks of
    ``intake.checks``)."""

    def wms(self, config: LibraryConfig) -> WmsClient: ...

    def clock(self) -> datetime: ...


class PollerPorts(Outbox, ReShareClients, Protocol):
    """The ReShare poller (``intake.polling``): the libraries, their ReShare tenants, the store, the bus."""

    @property
    def configs(self) -> ConfigStore: ...

    def clock(self) -> datetime: ...


class WebhookPorts(Outbox, ReShareClients, Protocol):
    """The public webhook (``intake.webhooks``): the webhook secrets only, ReShare to re-read a request."""

    @property
    def webhook_configs(self) -> ConfigStore: ...

    def clock(self) -> datetime: ...


class ReconcilerPorts(Outbox, Protocol):
    """The WMS reconciler (``intake.reconcile``): the libraries, their WMS, the store, the bus, staff's topic."""

    @property
    def configs(self) -> ConfigStore: ...

    @property
    def topic(self) -> Publisher | None: ...

    def wms(self, config: LibraryConfig) -> WmsClient: ...

    def clock(self) -> datetime: ...
