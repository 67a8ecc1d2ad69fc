"""Asking WMS, through the library's check-in probe, whether one item was checked in (the reconciler asks for
every item of a due mapping; a step asks to confirm a WMS check-in notice, ``workflow.notices``)."""

from __future__ import annotations

from illbridge.config import LibraryConfig
from illbridge.models import MappedItem, Mapping, Side
from illbridge.wms.probe import CheckinProbe, ProbeResult, holder_of, probe_for
from illbridge.workflow.ports import WmsPorts


def probe_item(
    ports: WmsPorts,
    config: LibraryConfig,
    mapping: Mapping,
    item: MappedItem,
    probe: CheckinProbe | None = None,
) -> ProbeResult:
    """Ask WMS, through the library's check-in probe, whether one item was checked in; kept on the item.

    Used by reconciliation (one probe for the whole run) and to confirm WMS check-in notices
    (``workflow.notices``). The probe is asked about the item's holder (``holder_of``: the patron, or the
    partner's account). Transient faults raise.
    """
    probe = probe or probe_for(config.wms, ports.wms(config))
    seen_on_loan = item.seen_on_loan or mapping.side == Side.LENDING
    result = probe.is_checked_in(item.barcode, seen_on_loan=seen_on_loan, holder=holder_of(mapping))
    item.wms_status = result.circulation_status or result.detail
    item.seen_on_loan = item.seen_on_loan or result.on_loan
    return result
