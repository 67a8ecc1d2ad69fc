"""Loading and caching library configurations with Powertools Parameters.

Layout (``prefix`` is the ``CONFIG_PREFIX`` setting, e.g. ``/reshare-wms-bridge``):
- SSM ``<prefix>/libraries``: JSON list of library ids this deployment serves;
- SSM ``<prefix>/libraries/<library_id>``: JSON settings (everything of ``LibraryConfig`` but the secrets);
- Secrets Manager ``<prefix without leading slash>/libraries/<library_id>``, the library secret: JSON
  ``{"wskey_secret": ..., "reshare_password": ...}``, read by every function but the public webhook;
- Secrets Manager ``<prefix without leading slash>/webhooks/<library_id>``, the webhook secret: JSON
  ``{"webhook_secrets": [...], "reshare_password": ...}``, the only secret the public webhook may read (it checks
  signatures and re-reads ReShare; it never holds the WSKey secret). ``ConfigStore(scope="webhook")`` reads it:
  its configurations have an empty ``wms.wskey_secret``. The library secret's own ``webhook_secrets``, if an
  older deployment still has them there, are read by the library scope and never by the webhook.
Values are cached for ``max_age`` seconds per function instance.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.parameters import SecretsProvider, SSMProvider
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError, TransformParameterError
from pydantic import ValidationError

from illbridge.config.library import LibraryConfig
from illbridge.errors import ConfigurationError, UnknownLibrary

SECRET_FIELDS = ("wskey_secret", "reshare_password")
WEBHOOK_SECRET_FIELDS = ("webhook_secrets", "reshare_password")
SCOPES = ("library", "webhook")


def settings_parameter(prefix: str, library_id: str) -> str:
    return f"{prefix.rstrip('/')}/libraries/{library_id}"


def index_parameter(prefix: str) -> str:
    return f"{prefix.rstrip('/')}/libraries"


def secret_name(prefix: str, library_id: str) -> str:
    return f"{prefix.strip('/')}/libraries/{library_id}"


def webhook_secret_name(prefix: str, library_id: str) -> str:
    return f"{prefix.strip('/')}/webhooks/{library_id}"


def _not_found(exc: Exception) -> bool:
    text = str(exc)
    return "ParameterNotFound" in text or "ResourceNotFoundException" in text


class ConfigStore:
    """Reads library configurations; one instance per function instance (the providers cache)."""

    def __init__(
        self,
        prefix: str,
        *,
        max_age: int = 300,
        ssm: SSMProvider | None = None,
        secrets: SecretsProvider | None = None,
        scope: str = "library",
    ) -> None:
        if scope not in SCOPES:
            raise ValueError(f"scope must be one of {', '.join(SCOPES)}")
        self.prefix = prefix
        self.scope = scope
        self.max_age = max_age
        self._ssm = ssm
        self._secrets = secrets
        # library id -> (settings, secret, config): the validated configuration, kept while the providers
        # answer with the very same cached values (for max_age, or until their cache is cleared)
        self._validated: dict[str, tuple[object, object, LibraryConfig]] = {}

    # The providers get their clients from the process's one boto3 session (the one the store and the bus
    # use): left alone, each would start a session of its own and load its botocore data again, a good
    # part of a cold start's first call (docs/performance.md#cold-start).

    @property
    def ssm(self) -> SSMProvider:
        if self._ssm is None:
            import boto3

            self._ssm = SSMProvider(boto3_client=boto3.client("ssm"))
        return self._ssm

    @property
    def secrets(self) -> SecretsProvider:
        if self._secrets is None:
            import boto3

            self._secrets = SecretsProvider(boto3_client=boto3.client("secretsmanager"))
        return self._secrets

    def library_ids(self) -> list[str]:
        name = index_parameter(self.prefix)
        try:
            value = self.ssm.get(name, transform="json", max_age=self.max_age)
        except (GetParameterError, TransformParameterError) as exc:
            if _not_found(exc):
                return []
            raise ConfigurationError(f"parameter {name} is not a JSON list of library ids: {exc}") from exc
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigurationError(f"parameter {name} must be a JSON list of library ids")
        return list(value)

    def get(self, library_id: str) -> LibraryConfig:
        """The library's configuration: read through the providers, which cache the parameter and the secret
        for ``max_age``; validated once for as long as they answer with the same cached values."""
        settings = self._settings(library_id)
        if self.scope == "webhook":
            secret = self._webhook_secret(library_id)
        else:
            secret = self._secret(library_id, secret_name(self.prefix, library_id), SECRET_FIELDS)
        known = self._validated.get(library_id)
        if known is not None and known[0] is settings and known[1] is secret:
            return known[2]
        if self.scope == "webhook":
            merged = _merge(settings, {**secret, "wskey_secret": ""}, library_id)
        else:
            merged = _merge(settings, secret, library_id)
        try:
            config = LibraryConfig.model_validate(merged)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"])
            more = f" (and {len(exc.errors()) - 1} more problems)" if len(exc.errors()) > 1 else ""
            raise ConfigurationError(f"{err['msg']}{more}", library_id=library_id, field=field) from exc
        self._validated[library_id] = (settings, secret, config)
        return config

    def all(self) -> list[LibraryConfig]:
        return [self.get(library_id) for library_id in self.library_ids()]

    def for_tenant(self, tenant: str) -> LibraryConfig:
        for config in self.all():
            if config.reshare.tenant == tenant:
                return config
        raise UnknownLibrary(f"no library is configured for ReShare tenant {tenant!r}")

    def _settings(self, library_id: str) -> dict[str, Any]:
        name = settings_parameter(self.prefix, library_id)
        try:
            value = self.ssm.get(name, transform="json", max_age=self.max_age)
        except TransformParameterError as exc:
            raise ConfigurationError(f"parameter {name} is not valid JSON", library_id=library_id) from exc
        except GetParameterError as exc:
            if _not_found(exc):
                raise UnknownLibrary(
                    f"no configuration (SSM parameter {name} does not exist)", library_id=library_id
                ) from exc
            raise
        if not isinstance(value, dict):
            raise ConfigurationError(f"parameter {name} must be a JSON object", library_id=library_id)
        return value

    def _secret(
        self, library_id: str, name: str, fields: tuple[str, ...], missing: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """The secret ``name`` with every one of ``fields``; ``missing`` (if given) when it does not exist."""
        try:
            value = self.secrets.get(name, transform="json", max_age=self.max_age)
        except TransformParameterError as exc:
            raise ConfigurationError(f"secret {name} is not valid JSON", library_id=library_id) from exc
        except GetParameterError as exc:
            if _not_found(exc) and missing is not None:
                return missing
            if _not_found(exc):
                raise ConfigurationError(
                    f"secret {name} does not exist (it holds {', '.join(fields)})",
                    library_id=library_id,
                ) from exc
            raise
        if not isinstance(value, dict):
            raise ConfigurationError(f"secret {name} must be a JSON object", library_id=library_id)
        for field in fields:
            if not value.get(field):
                raise ConfigurationError(
                    f"secret {name} has no {field!r}", library_id=library_id, field=field
                )
        if "webhook_secrets" in fields and not isinstance(value["webhook_secrets"], list):
            raise ConfigurationError(
                f"secret {name}: webhook_secrets must be a list",
                library_id=library_id,
                field="webhook_secrets",
            )
        return value

    def _webhook_secret(self, library_id: str) -> dict[str, Any]:
        """The library's webhook secret; a library without one signs no webhook (no secrets, no password)."""
        name = webhook_secret_name(self.prefix, library_id)
        return self._secret(
            library_id, name, WEBHOOK_SECRET_FIELDS, missing={"webhook_secrets": [], "reshare_password": ""}
        )


def _merge(settings: dict[str, Any], secret: dict[str, Any], library_id: str) -> dict[str, Any]:
    merged = json.loads(json.dumps(settings))  # deep copy
    merged.setdefault("library_id", library_id)
    if merged["library_id"] != library_id:
        raise ConfigurationError(
            f"settings name library {merged['library_id']!r}", library_id=library_id, field="library_id"
        )
    merged.setdefault("wms", {})["wskey_secret"] = secret["wskey_secret"]
    merged.setdefault("reshare", {})["password"] = secret["reshare_password"]
    merged["webhook_secrets"] = list(secret.get("webhook_secrets", []))
    return merged
