"""The ops API and the staff page are never open on AWS: every ops route names the staff's Cognito user-pool
authorizer (the sandbox's loopback gateway serves them open). Only the webhooks go without one: they check
each delivery's signature themselves.
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


def test_the_issue_s_ops_routes_are_served_by_the_ops_function() -> None:
    ops = {route: f for route, (f, _) in api_routes().items() if route[1].startswith("/ops")}
    assert ops == {
        ("GET", "/ops"): "OpsApiFunction",  # GET /ops/ too: API Gateway routes the trailing slash here
        ("GET", "/ops/requests/{library}/{hrid}"): "OpsApiFunction",
        ("GET", "/ops/attention"): "OpsApiFunction",
        ("POST", "/ops/requests/{library}/{hrid}/retry"): "OpsApiFunction",
    }


def test_every_ops_route_has_an_authorizer_and_it_is_the_staff_user_pool() -> None:
    routes = {r: props for r, (_, props) in api_routes().items() if r[1].startswith("/ops")}
    assert routes
    for route, props in routes.items():
        authorizer = (props.get("Auth") or {}).get("Authorizer")
        assert authorizer and authorizer != "NONE", f"{route} is open"
        if authorizer == "AWS_IAM":
            continue  # IAM for operators would do as well
        definition = AUTHORIZERS[authorizer]
        arn = definition["UserPoolArn"]
        pool = (
            arn["Fn::GetAtt"][0] if isinstance(arn["Fn::GetAtt"], list) else arn["Fn::GetAtt"].split(".")[0]
        )
        assert RESOURCES[pool]["Type"] == "AWS::Cognito::UserPool", route


def test_no_default_authorizer_leaves_an_ops_route_open_and_only_the_webhooks_have_none() -> None:
    # a route without Auth is open (there is no DefaultAuthorizer): only the signed webhooks may be
    assert "DefaultAuthorizer" not in TEMPLATE["Globals"]["Api"]["Auth"]
    open_routes = {
        r for r, (_, props) in api_routes().items() if not (props.get("Auth") or {}).get("Authorizer")
    }
    assert open_routes == {("POST", "/webhooks/reshare"), ("POST", "/webhooks/wms")}


def test_staff_accounts_are_made_by_an_administrator_only() -> None:
    pool = RESOURCES["StaffUserPool"]["Properties"]
    assert pool["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is True
    client = RESOURCES["StaffUserPoolClient"]["Properties"]
    assert client["GenerateSecret"] is False and client["UserPoolId"] == {"Ref": "StaffUserPool"}
    outputs = TEMPLATE["Outputs"]
    assert {"OpsPageUrl", "StaffUserPoolId", "StaffUserPoolClientId"} <= set(outputs)
