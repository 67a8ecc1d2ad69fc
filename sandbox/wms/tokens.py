"""OAuth WSKeys and tokens."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

from .admin import AdminState
from .records import (
    Institution,
    Token,
    utcnow,
)


class TokenState(AdminState):
    def set_token_ttl(self, seconds: int) -> None:
        with self.lock:
            self.token_ttl = seconds

    def expire_tokens(self) -> int:
        with self.lock:
            past = utcnow() - timedelta(seconds=1)
            for token in self.tokens.values():
                token.expires_at = min(token.expires_at, past)
            return len(self.tokens)

    # -- tokens ---------------------------------------------------------------------------------------
    def authenticate_client(self, wskey: str, secret: str) -> Institution | None:
        with self.lock:
            for inst in self.institutions.values():
                if secrets.compare_digest(inst.wskey.encode(), wskey.encode()) and secrets.compare_digest(
                    inst.secret.encode(), secret.encode()
                ):
                    return inst
            return None

    def issue_token(self, inst: Institution, scopes: tuple[str, ...]) -> Token:
        with self.lock:
            now = utcnow()
            token = Token(
                access_token="tk_" + secrets.token_urlsafe(32),
                registry_id=inst.registry_id,
                wskey=inst.wskey,
                scopes=scopes,
                issued_at=now,
                expires_at=now + timedelta(seconds=self.token_ttl),
            )
            self.tokens = {k: t for k, t in self.tokens.items() if t.expires_at > now - timedelta(hours=1)}
            self.tokens[token.access_token] = token
            return token

    def token(self, access_token: str) -> Token | None:
        """The live token, or None when unknown or expired."""
        with self.lock:
            token = self.tokens.get(access_token)
            if token is None or token.expires_at <= datetime.now(UTC):
                return None
            if token.registry_id not in self.institutions:
                return None
            return token
