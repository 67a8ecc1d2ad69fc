"""The two demo libraries of the sandbox: "east" and "west", wired to the ReShare and WMS simulators' demo data.

East borrows from West and lends to it (and the other way round). Each library's configuration is written the
way a deployment keeps it (docs/configuration.md): the list of library ids and the settings in SSM Parameter
Store, the secrets in Secrets Manager. Every configuration is validated with ``LibraryConfig`` before anything
is written, so a mistake here fails loudly at start-up rather than in a step.

    from sandbox.demo import DEMO_LIBRARIES, WEBHOOK_SECRETS, library_settings, seed_libraries
"""

from __future__ import annotations

import base64
import json
from typing import Any

from illbridge.config import LibraryConfig
from illbridge.config.loader import secret_name, webhook_secret_name

# Standard Webhooks secrets: "whsec_" + base64 of the key. Fixed demo keys (32 bytes), never for production.
_WEBHOOK_KEYS = {
    "east": b"reshare-wms-bridge demo key east",
    "west": b"reshare-wms-bridge demo key west",
}
WEBHOOK_SECRETS: dict[str, str] = {
    library_id: "whsec_" + base64.b64encode(key).decode("ascii") for library_id, key in _WEBHOOK_KEYS.items()
}

# What is fixed of each library; the simulators' URLs are filled in by library_settings().
DEMO_LIBRARIES: dict[str, dict[str, Any]] = {
    "east": {
        "name": "East University Library",
        "reshare": {"tenant": "east", "username": "bridge", "symbol": "RESHARE:EAST"},
        "wms": {"registry_id": "128807", "wskey": "east-wskey", "lending_agency_scheme": "institution"},
        # east-annex is deliberately unmapped: requests picked up there need staff attention
        "pickup_branches": {"east-main": "128807", "east-science": "262630"},
        "partner_accounts": {"RESHARE:WEST": "ILL-WEST"},
        "default_partner_account": "ILL-DEFAULT",
        "partner_agency_ids": {"RESHARE:WEST": "262626"},
        "secrets": {"wskey_secret": "east-secret", "reshare_password": "east-password"},
    },
    "west": {
        "name": "West College Library",
        "reshare": {"tenant": "west", "username": "bridge", "symbol": "RESHARE:WEST"},
        "wms": {"registry_id": "262626", "wskey": "west-wskey", "lending_agency_scheme": "institution"},
        "pickup_branches": {"west-main": "262626"},
        "partner_accounts": {"RESHARE:EAST": "ILL-EAST"},
        "default_partner_account": "ILL-DEFAULT",
        "partner_agency_ids": {"RESHARE:EAST": "128807"},
        "secrets": {"wskey_secret": "west-secret", "reshare_password": "west-password"},
    },
}


def library_settings(
    library_id: str, reshare_url: str, wms_url: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(SSM settings, every secret) of one demo library, pointing at the simulators (``split_secret`` makes
    the two Secrets Manager secrets of it)."""
    demo = DEMO_LIBRARIES[library_id]
    wms_url = wms_url.rstrip("/")
    settings = {
        "library_id": library_id,
        "name": demo["name"],
        "reshare": {"base_url": reshare_url.rstrip("/"), **demo["reshare"]},
        "wms": {
            **demo["wms"],
            "ncip_url": f"{wms_url}/ncip",
            "oauth_url": f"{wms_url}/oauth/token",
            "scim_url": f"{wms_url}/idaas/scim/v2/Users/.search",
        },
        "pickup_branches": dict(demo["pickup_branches"]),
        "partner_accounts": dict(demo["partner_accounts"]),
        "default_partner_account": demo["default_partner_account"],
        "partner_agency_ids": dict(demo["partner_agency_ids"]),
        "timezone": "America/New_York",  # as the WMS simulator's demo institutions
    }
    secret = {**demo["secrets"], "webhook_secrets": [WEBHOOK_SECRETS[library_id]]}
    return settings, secret


def split_secret(secret: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(library secret, webhook secret): the WSKey secret never goes to the webhook's (config/loader.py)."""
    library = {"wskey_secret": secret["wskey_secret"], "reshare_password": secret["reshare_password"]}
    webhook = {
        "webhook_secrets": list(secret.get("webhook_secrets", [])),
        "reshare_password": secret["reshare_password"],
    }
    return library, webhook


def validate(settings: dict[str, Any], secret: dict[str, Any]) -> LibraryConfig:
    """The LibraryConfig the functions will read (settings and secret merged as the loader merges them)."""
    merged = json.loads(json.dumps(settings))
    merged["wms"]["wskey_secret"] = secret["wskey_secret"]
    merged["reshare"]["password"] = secret["reshare_password"]
    merged["webhook_secrets"] = list(secret.get("webhook_secrets", []))
    return LibraryConfig.model_validate(merged)


def seed_libraries(
    ssm: Any, secretsmanager: Any, prefix: str, reshare_url: str, wms_url: str
) -> dict[str, LibraryConfig]:
    """Write both demo libraries' configuration (validated first) under ``prefix`` (e.g. /reshare-wms-bridge)."""
    prefix = "/" + prefix.strip("/")
    prepared = {}
    for library_id in DEMO_LIBRARIES:
        settings, secret = library_settings(library_id, reshare_url, wms_url)
        prepared[library_id] = (settings, secret, validate(settings, secret))
    for library_id, (settings, secret, _) in prepared.items():
        ssm.put_parameter(
            Name=f"{prefix}/libraries/{library_id}", Value=json.dumps(settings), Type="String", Overwrite=True
        )
        library_secret, webhook_secret = split_secret(secret)
        for name, value in (
            (secret_name(prefix, library_id), library_secret),
            (webhook_secret_name(prefix, library_id), webhook_secret),
        ):
            try:
                secretsmanager.create_secret(Name=name, SecretString=json.dumps(value))
            except secretsmanager.exceptions.ResourceExistsException:
                secretsmanager.put_secret_value(SecretId=name, SecretString=json.dumps(value))
    ssm.put_parameter(
        Name=f"{prefix}/libraries", Value=json.dumps(list(prepared)), Type="String", Overwrite=True
    )
    return {library_id: config for library_id, (_, _, config) in prepared.items()}
