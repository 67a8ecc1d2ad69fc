"""The bridge's WMS Circulation client: NCIP in OCLC's CircILL dialect, SCIM patron look-up, OAuth tokens.

Modules: ``safexml`` (hardened XML reading), ``ncip`` (message builders and response readers),
``auth`` (token cache), ``transport`` (one POST, failures mapped), ``scim`` (patron search), ``client``
(``WmsClient``), ``probe`` (how WMS-side check-ins are noticed).
"""

import importlib
from typing import Any

# Where each name lives; a submodule is imported on first use, so importing ``illbridge.wms.auth`` or
# ``illbridge.wms.probe`` does not load lxml (the NCIP modules) in a function that never speaks NCIP.
_HOMES = {
    "DEFAULT_TOKENS": "auth",
    "TokenCache": "auth",
    "WmsClient": "client",
    "AcceptItemResult": "ncip",
    "CheckInResult": "ncip",
    "CheckOutResult": "ncip",
    "ItemStatus": "ncip",
    "UserItems": "ncip",
    "CheckinProbe": "probe",
    "LookupItemProbe": "probe",
    "LookupUserProbe": "probe",
    "NoProbe": "probe",
    "ProbeResult": "probe",
    "holder_of": "probe",
    "probe_for": "probe",
    "Patron": "scim",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)


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
