"""Who may use the ops API and the staff page on AWS: API Gateway's REQUEST authorizer ``StaffSignIn``.

A staff member's browser carries the ID token of the stack's Cognito user pool ``StaffUserPool`` in the staff
page's session cookie (set by ``GET /ops/callback`` after the pool's sign-in page); other tools send the same
kind of token in the ``Authorization`` header (``Bearer`` optional), as the user-pool authorizer took it. The
token is accepted only if (Amazon Cognito, *Verifying JSON web tokens*):

- its RS256 signature verifies with the key its ``kid`` names in the pool's JWKS
  (``https://cognito-idp.<region>.amazonaws.com/<pool id>/.well-known/jwks.json``, fetched once per process
  and again, at most every 5 minutes, when a token names a key it does not hold);
- ``iss`` is that pool, ``aud`` the staff app client (stage variable ``StaffClientId``), ``token_use`` is
  ``id`` and ``exp`` has not passed.

Anything else (no token, expired, another pool or client, an access token, a changed byte, an unknown key)
raises ``Unauthorized``: API Gateway answers 401, which the API's gateway response turns into a redirect to
``/Prod/ops/signin``. Allowed requests carry the staff member's ``email`` and ``username`` in the authorizer
context. Caching is off (``ReauthorizeEvery: 0``): every request is checked.
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

from aws_lambda_powertools import Logger
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from illbridge.staffpage import SESSION_COOKIE

logger = Logger(service="reshare-wms-bridge")

ALGORITHM = "RS256"  # what Cognito signs user pool tokens with
JWKS_TIMEOUT_SECONDS = 3.0
REFETCH_SECONDS = 300.0  # an unknown kid fetches the JWKS again, at most this often


class Refused(Exception):
    """Why a request is not let in (logged; the answer is only ``Unauthorized``)."""


def endpoint_override() -> str | None:
    """Where the AWS SDKs would send Cognito calls instead of AWS (``AWS_ENDPOINT_URL_COGNITO_IDP``, then
    ``AWS_ENDPOINT_URL``): never set on Lambda; the sandbox sets it to moto, which serves each pool's JWKS at
    ``/<pool id>/.well-known/jwks.json`` as Cognito does. The issuer the token must name stays Cognito's."""
    return os.environ.get("AWS_ENDPOINT_URL_COGNITO_IDP") or os.environ.get("AWS_ENDPOINT_URL") or None


def jwks_url(issuer: str, pool_id: str) -> str:
    override = endpoint_override()
    return (
        f"{override.rstrip('/')}/{pool_id}/.well-known/jwks.json"
        if override
        else f"{issuer}/.well-known/jwks.json"
    )


def fetch_json(url: str) -> dict[str, Any]:
    override = endpoint_override()
    if not (url.startswith("https://") or (override and url.startswith(override.rstrip("/") + "/"))):
        raise Refused(f"refusing to fetch keys from {url}: not https")
    with urllib.request.urlopen(url, timeout=JWKS_TIMEOUT_SECONDS) as answer:  # noqa: S310 (checked above)
        return dict(json.load(answer))


class Verifier:
    """Verifies ID tokens of one user pool for one app client; holds the pool's keys for the process."""

    def __init__(
        self,
        issuer: str,
        client_id: str,
        *,
        jwks_url: str | None = None,
        clock: Callable[[], float] = time.time,
        fetch: Callable[[str], dict[str, Any]] = fetch_json,
    ) -> None:
        self.issuer = issuer
        self.client_id = client_id
        self.jwks_url = jwks_url or f"{issuer}/.well-known/jwks.json"
        self.clock = clock
        self._fetch = fetch
        self._keys: KeySet | None = None
        self._kids: set[str] = set()
        self._fetched_at = float("-inf")
        self._lock = threading.Lock()

    def _key_set(self, kid: str) -> KeySet:
        with self._lock:
            stale = time.monotonic() - self._fetched_at >= REFETCH_SECONDS
            if self._keys is None or (kid not in self._kids and stale):
                try:
                    document = self._fetch(self.jwks_url)
                    keys = KeySet.import_key_set(document)  # type: ignore[arg-type]
                except (OSError, ValueError, JoseError) as exc:
                    raise Refused(f"cannot read the user pool's keys: {exc}") from exc
                self._keys = keys
                self._kids = {str(k.get("kid")) for k in document.get("keys", []) if k.get("kid")}
                self._fetched_at = time.monotonic()
            if kid not in self._kids:
                raise Refused(f"token signed with key {kid!r}, which the user pool does not have")
            return self._keys

    def verify(self, token: str) -> dict[str, Any]:
        """The token's claims, or Refused."""
        try:
            header = jws.extract_compact(token.encode()).protected
        except (JoseError, ValueError, UnicodeError) as exc:
            raise Refused(f"not a JWT: {exc}") from exc
        if header.get("alg") != ALGORITHM:
            raise Refused(f"token algorithm {header.get('alg')!r}, not {ALGORITHM}")
        keys = self._key_set(str(header.get("kid") or ""))
        try:
            claims = jwt.decode(token, keys, algorithms=[ALGORITHM]).claims
            jwt.JWTClaimsRegistry(
                now=int(self.clock()),
                iss={"essential": True, "value": self.issuer},
                aud={"essential": True, "value": self.client_id},
                token_use={"essential": True, "value": "id"},
                exp={"essential": True},
                sub={"essential": True},
            ).validate(claims)
        except (JoseError, ValueError) as exc:
            raise Refused(f"{type(exc).__name__}: {exc}") from exc
        return dict(claims)


_verifiers: dict[tuple[str, str], Verifier] = {}


def verifier_for(event: Mapping[str, Any]) -> Verifier:
    pool_id = os.environ.get("STAFF_USER_POOL_ID", "")
    region = os.environ.get("AWS_REGION", "")
    client_id = (event.get("stageVariables") or {}).get("StaffClientId") or ""
    if not (pool_id and region and client_id):
        raise Refused("STAFF_USER_POOL_ID, AWS_REGION or the StaffClientId stage variable is not set")
    issuer = f"https://cognito-idp.{region}.amazonaws.com/{pool_id}"
    key = (issuer, client_id)
    if key not in _verifiers:
        _verifiers[key] = Verifier(issuer, client_id, jwks_url=jwks_url(issuer, pool_id))
    return _verifiers[key]


def _headers(event: Mapping[str, Any], name: str) -> list[str]:
    """Every value of one header (any case), from ``multiValueHeaders`` and ``headers``."""
    found: list[str] = []
    for key, values in (event.get("multiValueHeaders") or {}).items():
        if key.lower() == name:
            found += [v for v in values or [] if v]
    if not found:
        found = [v for k, v in (event.get("headers") or {}).items() if k.lower() == name and v]
    return found


def tokens_of(event: Mapping[str, Any]) -> list[str]:
    """The candidate tokens: the session cookie's, then the Authorization header's."""
    found = []
    for header in _headers(event, "cookie"):
        for pair in header.split(";"):
            name, _, value = pair.strip().partition("=")
            if name == SESSION_COOKIE and value:
                found.append(value)
    for header in _headers(event, "authorization"):
        value = header.strip()
        found.append(value[7:].strip() if value[:7].lower() == "bearer " else value)
    return found


def policy(claims: Mapping[str, Any], method_arn: str) -> dict[str, Any]:
    return {
        "principalId": str(claims["sub"]),
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": method_arn}],
        },
        "context": {
            "email": str(claims.get("email") or ""),
            "username": str(claims.get("cognito:username") or ""),
        },
    }


def authorize(event: Mapping[str, Any]) -> dict[str, Any]:
    """The Allow policy for this request, or Refused."""
    candidates = tokens_of(event)
    if not candidates:
        raise Refused("no session cookie and no Authorization header")
    verifier = verifier_for(event)
    refusal = Refused("no token")
    for token in candidates:
        try:
            return policy(verifier.verify(token), event["methodArn"])
        except Refused as exc:
            refusal = exc
    raise refusal


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    try:
        return authorize(event)
    except Refused as exc:
        logger.info("ops request not signed in", extra={"reason": str(exc), "path": event.get("path")})
        # exactly this message: API Gateway answers 401 (gateway response UNAUTHORIZED: to the sign-in)
        raise Exception("Unauthorized") from None
