"""Signing in, through the sandbox: the template's StaffUserPool and its staff app client exist in moto
(``sandbox.runtime.aws.provision_user_pools``), moto signs their ID tokens (RS256) and serves the pool's JWKS
as Cognito does, and the deployed ops routes' authorizer (OpsAuthorizerFunction, run as the sandbox runs every
function) lets in a staff member's token from the session cookie or the Authorization header and nothing else;
the ops function then shows who is signed in, with Sign out. (moto has no sign-in pages: the code exchange is
tested against a token endpoint of its own in tests/unit/staff/test_sign_in.py. The sandbox's gateway itself
stays open: docs/operations.md#who-may-use-it.)
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest

from sandbox.runtime import Sandbox
from sandbox.runtime.functions import HandlerError

STAFF = "ill-staff@library.example"
PASSWORD = "Staff-Password-12"


@pytest.fixture(scope="module")
def staff(sandbox: Sandbox) -> Iterator[dict[str, str]]:
    """An administrator adds a staff member to the stack's pool, who signs in with the staff app client."""
    cognito = sandbox.boto3_client("cognito-idp")
    pool, client = (
        sandbox.stack.physical_ids["StaffUserPool"],
        sandbox.stack.physical_ids["StaffUserPoolClient"],
    )
    cognito.admin_create_user(UserPoolId=pool, Username=STAFF, MessageAction="SUPPRESS")
    cognito.admin_set_user_password(UserPoolId=pool, Username=STAFF, Password=PASSWORD, Permanent=True)
    answer = cognito.initiate_auth(
        ClientId=client,
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": STAFF, "PASSWORD": PASSWORD},
    )["AuthenticationResult"]
    # another app client of the same pool: its tokens are for another audience
    other = cognito.create_user_pool_client(
        UserPoolId=pool, ClientName="other-app", ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH"]
    )["UserPoolClient"]["ClientId"]
    elsewhere = cognito.initiate_auth(
        ClientId=other,
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": STAFF, "PASSWORD": PASSWORD},
    )["AuthenticationResult"]
    yield {
        "pool": pool,
        "client": client,
        "id": answer["IdToken"],
        "access": answer["AccessToken"],
        "other_client": elsewhere["IdToken"],
    }
    cognito.admin_delete_user(UserPoolId=pool, Username=STAFF)
    cognito.delete_user_pool_client(UserPoolId=pool, ClientId=other)


def stage_variables(sb: Sandbox) -> dict[str, str]:
    """The API stage's variables as API Gateway would hand them over: the template's, resolved."""
    assert sb.stack is not None
    variables = sb.stack.template["Globals"]["Api"]["Variables"]
    return {
        name: str(sb.stack.resolve(value, f"Globals.Api.Variables.{name}"))
        for name, value in variables.items()
    }


def asked(sb: Sandbox, cookie: str | None = None, authorization: str | None = None) -> dict[str, Any]:
    headers = {"Host": "local.execute-api.eu-west-1.amazonaws.com", "Accept": "text/html"}
    if cookie:
        headers["Cookie"] = cookie
    if authorization:
        headers["Authorization"] = authorization
    return {
        "type": "REQUEST",
        "methodArn": "arn:aws:execute-api:eu-west-1:123456789012:local/Prod/GET/ops",
        "resource": "/ops",
        "path": "/ops/",
        "httpMethod": "GET",
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "stageVariables": stage_variables(sb),
        "requestContext": {"stage": "Prod", "resourcePath": "/ops", "httpMethod": "GET"},
    }


def refused(sb: Sandbox, event: dict[str, Any]) -> None:
    with pytest.raises(HandlerError) as caught:
        sb.invoke("OpsAuthorizerFunction", event)
    assert (caught.value.error_type, caught.value.error_message) == ("Exception", "Unauthorized")


def test_the_stack_s_pool_and_client_are_moto_s_and_the_functions_name_them(
    sandbox: Sandbox, staff: dict[str, str]
) -> None:
    assert sandbox.function_env("OpsAuthorizerFunction")["STAFF_USER_POOL_ID"] == staff["pool"]
    assert stage_variables(sandbox)["StaffClientId"] == staff["client"]
    client = sandbox.boto3_client("cognito-idp").describe_user_pool_client(
        UserPoolId=staff["pool"], ClientId=staff["client"]
    )["UserPoolClient"]
    assert client["AllowedOAuthFlows"] == ["code"]
    assert client["CallbackURLs"] == ["https://local.execute-api.eu-west-1.amazonaws.com/Prod/ops/callback"]


def test_a_staff_member_s_id_token_is_let_in_from_the_cookie_or_the_header(
    sandbox: Sandbox, staff: dict[str, str]
) -> None:
    allowed = sandbox.invoke("OpsAuthorizerFunction", asked(sandbox, cookie=f"illbridge_staff={staff['id']}"))
    assert allowed["policyDocument"]["Statement"][0]["Effect"] == "Allow"
    assert allowed["context"]["email"] == STAFF
    by_header = sandbox.invoke("OpsAuthorizerFunction", asked(sandbox, authorization=f"Bearer {staff['id']}"))
    assert by_header["principalId"] == allowed["principalId"]
    # and the page says who is signed in, with a way out
    page = sandbox.invoke("OpsApiFunction", page_event(allowed["context"]))
    assert page["statusCode"] == 200
    assert STAFF in page["body"] and "/Prod/ops/signout" in page["body"]


def test_anything_but_the_staff_client_s_id_token_is_refused(sandbox: Sandbox, staff: dict[str, str]) -> None:
    refused(sandbox, asked(sandbox))
    refused(sandbox, asked(sandbox, cookie=f"illbridge_staff={staff['access']}"))  # an access token
    refused(sandbox, asked(sandbox, cookie=f"illbridge_staff={staff['other_client']}"))  # another client
    header, payload, signature = staff["id"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["email"] = "someone-else@library.example"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    refused(sandbox, asked(sandbox, cookie=f"illbridge_staff={header}.{forged}.{signature}"))


def page_event(context: dict[str, Any]) -> dict[str, Any]:
    """GET /ops/ through API Gateway after the authorizer let it in (its context in requestContext)."""
    headers = {"Host": "local.execute-api.eu-west-1.amazonaws.com", "Accept": "text/html"}
    return {
        "resource": "/ops",
        "path": "/ops/",
        "httpMethod": "GET",
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "stage": "Prod",
            "resourcePath": "/ops",
            "httpMethod": "GET",
            "path": "/Prod/ops/",
            "authorizer": {**context, "principalId": "staff", "integrationLatency": 5},
        },
        "body": None,
        "isBase64Encoded": False,
    }
