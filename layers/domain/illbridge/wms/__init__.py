"""The bridge's WMS Circulation client: NCIP in OCLC's CircILL dialect, SCIM patron look-up, OAuth tokens.

Modules: ``safexml`` (hardened XML reading), ``ncip`` (message builders and response readers),
``auth`` (token cache), ``transport`` (one POST, failures mapped), ``scim`` (patron search), ``client``
(``WmsClient``), ``probe`` (how WMS-side check-ins are noticed).
"""

from illbridge.wms.auth import DEFAULT_TOKENS, TokenCache
from illbridge.wms.client import WmsClient
from illbridge.wms.ncip import AcceptItemResult, CheckInResult, CheckOutResult, ItemStatus, UserItems
from illbridge.wms.probe import (
    CheckinProbe,
    LookupItemProbe,
    LookupUserProbe,
    NoProbe,
    ProbeResult,
    holder_of,
    probe_for,
)
from illbridge.wms.scim import Patron

__all__ = [
    "DEFAULT_TOKENS",
    "AcceptItemResult",
    "CheckInResult",
    "CheckOutResult",
    "CheckinProbe",
    "ItemStatus",
    "LookupItemProbe",
    "LookupUserProbe",
    "NoProbe",
    "Patron",
    "ProbeResult",
    "TokenCache",
    "UserItems",
    "WmsClient",
    "holder_of",
    "probe_for",
]
