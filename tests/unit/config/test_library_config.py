"""Per-library configuration: loaded from SSM + Secrets Manager (moto), typed, with one clear error each."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from illbridge.config import ConfigStore, LibraryConfig
from illbridge.config.loader import index_parameter, secret_name, settings_parameter, webhook_secret_name
from illbridge.errors import ConfigurationError, UnknownLibrary

PREFIX = "/test-bridge"


def library_settings(library_id: str = "east", **overrides: object) -> dict:
    settings: dict = {
        "library_id": library_id,
        "name": "East University Library",
        "reshare": {
            "base_url": "http://127.0.0.1:9130",
            "tenant": library_id,
            "username": "bridge",
            "symbol": "RESHARE:EAST",
        },
        "wms": {
            "registry_id": "128807",
            "ncip_url": "http://127.0.0.1:9140/ncip",
            "oauth_url": "http://127.0.0.1:9140/oauth/token",
            "scim_url": "http://127.0.0.1:9140/idaas/scim/v2/Users/.search",
            "wskey": "east-wskey",
        },
        "pickup_branches": {"east-main": "128807", "east-science": "262630"},
        "partner_accounts": {"RESHARE:WEST": "ILL-WEST"},
        "default_partner_account": "ILL-DEFAULT",
    }
    settings.update(overrides)
    return settings


SECRET = {
    "wskey_secret": "s3cret-wskey",
    "reshare_password": "pw",
    "webhook_secrets": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
}


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        yield boto3.client("ssm"), boto3.client("secretsmanager")


def store_library(aws, library_id: str, settings: dict | str, secret: dict | None = SECRET) -> None:
    ssm, secrets = aws
    value = settings if isinstance(settings, str) else json.dumps(settings)
    ssm.put_parameter(Name=settings_parameter(PREFIX, library_id), Value=value, Type="String", Overwrite=True)
    if secret is not None:
        secrets.create_secret(Name=secret_name(PREFIX, library_id), SecretString=json.dumps(secret))


def test_a_complete_library_loads_typed_with_safe_defaults(aws) -> None:
    # Given a library with settings and secrets
    store_library(aws, "east", library_settings())
    aws[0].put_parameter(Name=index_parameter(PREFIX), Value=json.dumps(["east"]), Type="String")
    # When it is loaded
    config = ConfigStore(PREFIX, max_age=0).get("east")
    # Then every value is typed, the secrets are merged in, and the switches default to on
    assert isinstance(config, LibraryConfig)
    assert config.wms.wskey_secret.get_secret_value() == "s3cret-wskey"
    assert config.reshare.password.get_secret_value() == "pw"
    assert config.steps.create_temp_item_on_received and config.steps.update_reshare_when_wms_checks_in_first
    assert config.return_buffer_days == 0
    assert config.wms.requested_action_type == "Hold For Fulfillment"
    assert config.branch_for(None, "east-science") == "262630"
    assert config.account_for_partner("RESHARE:WEST") == "ILL-WEST"
    assert config.account_for_partner("RESHARE:NORTH") == "ILL-DEFAULT"
    assert "s3cret" not in repr(config)
    assert ConfigStore(PREFIX, max_age=0).library_ids() == ["east"]


def test_an_unknown_library_is_one_clear_error(aws) -> None:
    with pytest.raises(UnknownLibrary) as caught:
        ConfigStore(PREFIX, max_age=0).get("north")
    assert "library 'north'" in str(caught.value)
    assert settings_parameter(PREFIX, "north") in str(caught.value)


WEBHOOK_SECRET = {"webhook_secrets": ["whsec_Zm9yIHRoZSB3ZWJob29rIG9ubHk="], "reshare_password": "pw"}


def test_the_webhook_scope_reads_only_the_webhook_secret_and_never_holds_the_wskey(aws) -> None:
    # Given a library whose library secret (with the WSKey) and webhook secret are stored apart
    store_library(aws, "east", library_settings())
    aws[1].create_secret(Name=webhook_secret_name(PREFIX, "east"), SecretString=json.dumps(WEBHOOK_SECRET))
    # When the webhook's store reads it
    config = ConfigStore(PREFIX, max_age=0, scope="webhook").get("east")
    # Then it has the webhook's signing secrets and the ReShare password, and no WSKey secret
    assert [s.get_secret_value() for s in config.webhook_secrets] == WEBHOOK_SECRET["webhook_secrets"]
    assert config.reshare.password.get_secret_value() == "pw"
    assert config.wms.wskey_secret.get_secret_value() == ""
    # and the library scope does not take the webhook secret
    library = ConfigStore(PREFIX, max_age=0).get("east")
    assert library.wms.wskey_secret.get_secret_value() == "s3cret-wskey"
    assert "whsec_Zm9yIHRoZSB3ZWJob29rIG9ubHk=" not in [s.get_secret_value() for s in library.webhook_secrets]


def test_the_webhook_scope_works_without_the_library_secret_at_all(aws) -> None:
    # the webhook's role may not read the library secret: it must not need it
    store_library(aws, "east", library_settings(), secret=None)
    aws[1].create_secret(Name=webhook_secret_name(PREFIX, "east"), SecretString=json.dumps(WEBHOOK_SECRET))
    config = ConfigStore(PREFIX, max_age=0, scope="webhook").get("east")
    assert config.reshare.password.get_secret_value() == "pw"
    with pytest.raises(ConfigurationError, match="does not exist"):
        ConfigStore(PREFIX, max_age=0).get("east")


def test_a_library_without_a_webhook_secret_signs_no_webhook(aws) -> None:
    store_library(aws, "east", library_settings())
    config = ConfigStore(PREFIX, max_age=0, scope="webhook").get("east")
    assert config.webhook_secrets == []


def test_a_webhook_secret_without_the_reshare_password_names_the_field(aws) -> None:
    store_library(aws, "east", library_settings())
    aws[1].create_secret(
        Name=webhook_secret_name(PREFIX, "east"), SecretString=json.dumps({"webhook_secrets": ["whsec_x"]})
    )
    with pytest.raises(ConfigurationError) as caught:
        ConfigStore(PREFIX, max_age=0, scope="webhook").get("east")
    assert caught.value.field == "reshare_password"


def test_a_missing_secret_names_the_library_and_the_secret(aws) -> None:
    store_library(aws, "east", library_settings(), secret=None)
    with pytest.raises(ConfigurationError) as caught:
        ConfigStore(PREFIX, max_age=0).get("east")
    message = str(caught.value)
    assert (
        "library 'east'" in message and secret_name(PREFIX, "east") in message and "does not exist" in message
    )


def test_a_secret_without_the_wskey_secret_names_the_field(aws) -> None:
    store_library(aws, "east", library_settings(), secret={"reshare_password": "pw"})
    with pytest.raises(ConfigurationError) as caught:
        ConfigStore(PREFIX, max_age=0).get("east")
    assert caught.value.field == "wskey_secret"
    assert "library 'east'" in str(caught.value)


def test_a_malformed_branch_id_names_the_library_the_field_and_the_value(aws) -> None:
    store_library(aws, "east", library_settings(pickup_branches={"east-main": "12880"}))
    with pytest.raises(ConfigurationError) as caught:
        ConfigStore(PREFIX, max_age=0).get("east")
    assert caught.value.library_id == "east"
    assert caught.value.field == "pickup_branches"
    assert "'12880'" in str(caught.value) and "6-digit" in str(caught.value)


def test_unknown_settings_fields_are_refused_not_ignored(aws) -> None:
    # A typo in a switch must not silently fall back to the default.
    store_library(aws, "east", library_settings(steps={"create_temp_item_on_recieved": False}))
    with pytest.raises(ConfigurationError) as caught:
        ConfigStore(PREFIX, max_age=0).get("east")
    assert caught.value.field == "steps.create_temp_item_on_recieved"


def test_settings_that_are_not_json_are_one_clear_error(aws) -> None:
    store_library(aws, "east", "{not json")
    with pytest.raises(ConfigurationError, match="not valid JSON"):
        ConfigStore(PREFIX, max_age=0).get("east")


def test_values_are_cached_for_max_age(aws) -> None:
    store_library(aws, "east", library_settings(name="Before"))
    configs = ConfigStore(PREFIX, max_age=300)
    assert configs.get("east").name == "Before"
    aws[0].put_parameter(
        Name=settings_parameter(PREFIX, "east"),
        Value=json.dumps(library_settings(name="After")),
        Type="String",
        Overwrite=True,
    )
    assert configs.get("east").name == "Before"
    assert ConfigStore(PREFIX, max_age=0).get("east").name == "After"
