"""The ops API and the staff page are never open on AWS: every ops route names the ``StaffSignIn`` authorizer
(a Lambda REQUEST authorizer verifying a StaffUserPool ID token from the page's session cookie or the
Authorization header; the sandbox's loopback gateway serves them open). Only the webhooks (they check each
delivery's signature) and the three routes that start, finish and end a sign-in go without one. The user pool
signs staff in with its own pages: authorization code back to this stack's API, sign-out back to the sign-in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sandbox.template import load_template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = load_template(ROOT / "template.yaml")
RESOURCES = TEMPLATE["Resources"]
AUTHORIZERS = TEMPLATE["Globals"]["Api"]["Auth"]["Authorizers"]


def api_routes() -> dict[tuple[str, str], tuple[str, dict[str, Any]]]:
    """(method, path) -> (function, the event's properties), for every Api event of the template."""
    routes = {}
    for name, resource in RESOURCES.items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        for event in (resource["Properties"].get("Events") or {}).values():
            if event["Type"] == "Api":
                props = event["Properties"]
                routes[(props["Method"].upper(), props["Path"])] = (name, props)
    return routes


SIGN_IN_ROUTES = {("GET", "/ops/signin"), ("GET", "/ops/callback"), ("GET", "/ops/signout")}
API_URL = "https://${ServerlessRestApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/Prod"


def test_the_issue_s_ops_routes_are_served_by_the_ops_function() -> None:
    ops = {route: f for route, (f, _) in api_routes().items() if route[1].startswith("/ops")}
    assert ops == {
        ("GET", "/ops"): "OpsApiFunction",  # GET /ops/ too: API Gateway routes the trailing slash here
        ("GET", "/ops/requests/{library}/{hrid}"): "OpsApiFunction",
        ("GET", "/ops/attention"): "OpsApiFunction",
        ("POST", "/ops/requests/{library}/{hrid}/retry"): "OpsApiFunction",
        **dict.fromkeys(SIGN_IN_ROUTES, "OpsApiFunction"),
    }


def test_every_ops_route_but_the_sign_in_is_behind_the_staff_sign_in_authorizer() -> None:
    routes = {r: props for r, (_, props) in api_routes().items() if r[1].startswith("/ops")}
    assert len(routes) == 7
    for route, props in routes.items():
        authorizer = (props.get("Auth") or {}).get("Authorizer")
        if route in SIGN_IN_ROUTES:
            assert authorizer is None, route
            continue
        assert authorizer == "StaffSignIn", f"{route} is open"
    # a REQUEST authorizer (the browser sends a cookie, not a header), run on every request (no cache), by the
    # function that verifies StaffUserPool's ID tokens
    definition = AUTHORIZERS["StaffSignIn"]
    assert definition["FunctionPayloadType"] == "REQUEST"
    assert definition["FunctionArn"] == {"Fn::GetAtt": ["OpsAuthorizerFunction", "Arn"]}
    assert definition["Identity"] == {"ReauthorizeEvery": 0}
    function = RESOURCES["OpsAuthorizerFunction"]["Properties"]
    assert function["CodeUri"] == "functions/ops_authorizer/" and "Events" not in function
    assert function["Environment"]["Variables"]["STAFF_USER_POOL_ID"] == {"Ref": "StaffUserPool"}
    assert "Policies" not in function  # it calls no AWS API: the pool's JWKS is public
    # the authorizer is told the app client by the stage (its environment cannot name it: a cycle)
    assert TEMPLATE["Globals"]["Api"]["Variables"]["StaffClientId"] == {"Ref": "StaffUserPoolClient"}


def test_no_default_authorizer_leaves_an_ops_route_open_and_only_webhooks_and_sign_in_have_none() -> None:
    # a route without Auth is open (there is no DefaultAuthorizer)
    assert "DefaultAuthorizer" not in TEMPLATE["Globals"]["Api"]["Auth"]
    open_routes = {
        r for r, (_, props) in api_routes().items() if not (props.get("Auth") or {}).get("Authorizer")
    }
    assert open_routes == {("POST", "/webhooks/reshare"), ("POST", "/webhooks/wms")} | SIGN_IN_ROUTES


def test_a_request_not_signed_in_is_sent_to_the_sign_in() -> None:
    unauthorized = TEMPLATE["Globals"]["Api"]["GatewayResponses"]["UNAUTHORIZED"]
    assert unauthorized["StatusCode"] == 302
    assert unauthorized["ResponseParameters"]["Headers"]["Location"] == "'/Prod/ops/signin'"
    assert ("GET", "/ops/signin") in api_routes()


def test_staff_accounts_are_made_by_an_administrator_only() -> None:
    pool = RESOURCES["StaffUserPool"]["Properties"]
    assert pool["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is True
    client = RESOURCES["StaffUserPoolClient"]["Properties"]
    assert client["GenerateSecret"] is False and client["UserPoolId"] == {"Ref": "StaffUserPool"}
    outputs = TEMPLATE["Outputs"]
    assert {"OpsPageUrl", "StaffUserPoolId", "StaffUserPoolClientId"} <= set(outputs)


def test_the_app_client_signs_in_with_a_code_back_to_this_stack_s_api() -> None:
    client = RESOURCES["StaffUserPoolClient"]["Properties"]
    assert client["AllowedOAuthFlowsUserPoolClient"] is True
    assert client["AllowedOAuthFlows"] == ["code"]  # no implicit grant: tokens never travel in a URL
    assert client["AllowedOAuthScopes"] == ["openid", "email"]
    assert client["SupportedIdentityProviders"] == ["COGNITO"]
    assert client["CallbackURLs"] == [{"Fn::Sub": f"{API_URL}/ops/callback"}]
    assert client["LogoutURLs"] == [{"Fn::Sub": f"{API_URL}/ops/signin"}]
    # the page's URL output is under the same stage the callback names
    assert TEMPLATE["Outputs"]["OpsPageUrl"]["Value"] == {"Fn::Sub": f"{API_URL}/ops"}


def test_the_sign_in_domain_is_the_pool_s_own_prefix_unique_to_the_stack() -> None:
    domain = RESOURCES["StaffUserPoolDomain"]["Properties"]
    prefix = {
        "Fn::Join": [
            "-",
            ["illbridge-staff", {"Fn::Select": [2, {"Fn::Split": ["/", {"Ref": "AWS::StackId"}]}]}],
        ]
    }
    assert domain == {"UserPoolId": {"Ref": "StaffUserPool"}, "Domain": prefix, "ManagedLoginVersion": 1}
    # illbridge-staff- and the stack id's UUID: 51 characters of [a-z0-9-], within Cognito's 63
    assert len("illbridge-staff-") + 36 <= 63
    variable = TEMPLATE["Globals"]["Api"]["Variables"]["StaffSignInDomain"]
    assert variable == {"Fn::Join": ["", [prefix, {"Fn::Sub": ".auth.${AWS::Region}.amazoncognito.com"}]]}


def test_the_session_cookie_is_secure_http_only_same_site_lax_under_the_stage_s_ops_path() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("ops_api_template_test", ROOT / "functions/ops_api/app.py")
    assert spec and spec.loader
    ops = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ops)
    cookie = str(ops._page_cookie("illbridge_staff", "token", "/Prod/ops", 3600))
    assert cookie == "illbridge_staff=token; Path=/Prod/ops; Max-Age=3600; HttpOnly; Secure; SameSite=Lax"
    # the callback the app client names is the route under that path
    assert client_callback_path() == "/Prod/ops/callback"


def client_callback_path() -> str:
    [url] = RESOURCES["StaffUserPoolClient"]["Properties"]["CallbackURLs"]
    return "/" + url["Fn::Sub"].split("}/", 1)[1]


def test_the_jwt_library_is_the_authorizer_s_own_pinned_and_not_in_the_domain_layer() -> None:
    own = (ROOT / "functions/ops_authorizer/requirements.txt").read_text().splitlines()
    pins = [line for line in own if line and not line.startswith("#")]
    assert pins and all("==" in line for line in pins)
    assert any(line.startswith("joserfc==") for line in pins)
    layer = (ROOT / "layers/domain/requirements.txt").read_text().lower()
    assert "jose" not in layer and "jwt" not in layer and "cryptography" not in layer
