"""sandbox.template: short tags parsed, and tables derived from template.yaml exactly as it declares them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from illbridge.store import keys
from sandbox.template import (
    TemplateError,
    create_dynamodb_tables,
    dynamodb_tables,
    load_template,
    parse_template,
)

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = load_template(ROOT / "template.yaml")
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]

SHORT_TAGS = """
AWSTemplateFormatVersion: 2010-09-09
Parameters:
  Stage: {Type: String, Default: dev}
Conditions:
  IsProd: !Equals [!Ref Stage, prod]
  NotProd: !Not [!Condition IsProd]
Resources:
  Thing:
    Type: AWS::Test::Thing
    Condition: IsProd
    Properties:
      Ref: !Ref Stage
      Sub: !Sub "${AWS::StackName}-bus"
      SubWithVars: !Sub ["${A}-x", {A: !Ref Stage}]
      Att: !GetAtt Table.StreamArn
      AttNested: !GetAtt Resource.Attr.Part
      AttList: !GetAtt [Table, Arn]
      If: !If [IsProd, !Ref Stage, !Ref AWS::NoValue]
      Join: !Join ["-", [a, !Ref Stage]]
      Select: !Select [0, !GetAZs ""]
      Split: !Split [",", "a,b"]
      Map: !FindInMap [Map, !Ref Stage, Key]
      Import: !ImportValue {"Fn::Sub": "${Stage}-export"}
      Base64: !Base64 hello
      Cond: !Condition NotProd
"""


def test_short_tags_become_long_forms() -> None:
    # Given YAML using the short tags in scalar, sequence and mapping forms
    # When it is parsed
    template = parse_template(SHORT_TAGS)
    props = template["Resources"]["Thing"]["Properties"]
    # Then every tag is in its long (JSON) form, nested ones too
    assert template["AWSTemplateFormatVersion"] == "2010-09-09", (
        "dates stay strings, as CloudFormation reads them"
    )
    assert template["Conditions"] == {
        "IsProd": {"Fn::Equals": [{"Ref": "Stage"}, "prod"]},
        "NotProd": {"Fn::Not": [{"Condition": "IsProd"}]},
    }
    assert props == {
        "Ref": {"Ref": "Stage"},
        "Sub": {"Fn::Sub": "${AWS::StackName}-bus"},
        "SubWithVars": {"Fn::Sub": ["${A}-x", {"A": {"Ref": "Stage"}}]},
        "Att": {"Fn::GetAtt": ["Table", "StreamArn"]},
        "AttNested": {"Fn::GetAtt": ["Resource", "Attr.Part"]},
        "AttList": {"Fn::GetAtt": ["Table", "Arn"]},
        "If": {"Fn::If": ["IsProd", {"Ref": "Stage"}, {"Ref": "AWS::NoValue"}]},
        "Join": {"Fn::Join": ["-", ["a", {"Ref": "Stage"}]]},
        "Select": {"Fn::Select": [0, {"Fn::GetAZs": ""}]},
        "Split": {"Fn::Split": [",", "a,b"]},
        "Map": {"Fn::FindInMap": ["Map", {"Ref": "Stage"}, "Key"]},
        "Import": {"Fn::ImportValue": {"Fn::Sub": "${Stage}-export"}},
        "Base64": {"Fn::Base64": "hello"},
        "Cond": {"Condition": "NotProd"},
    }


def test_unknown_tags_and_bad_yaml_are_template_errors() -> None:
    # Given a tag CloudFormation does not have, and broken YAML; Then both are refused as template errors
    with pytest.raises(TemplateError, match="!Frobnicate"):
        parse_template("A: !Frobnicate x\n")
    with pytest.raises(TemplateError):
        parse_template("A: [unclosed\n")


def test_the_real_template_parses() -> None:
    # Given template.yaml; Then its short tags are long forms
    env = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
    assert env["TABLE_NAME"] == {"Ref": "BridgeTable"}
    assert "IDEMPOTENCY_TABLE_NAME" not in env  # one table: the step claim stops a duplicate


def _keys(schema: list[dict[str, str]]) -> list[tuple[str, str]]:
    return [(k["AttributeName"], k["KeyType"]) for k in schema]


def test_bridge_table_is_derived_as_declared() -> None:
    # Given the template's tables
    tables = dynamodb_tables(TEMPLATE)
    declared = RESOURCES["BridgeTable"]["Properties"]
    # When the bridge table's create_table arguments are derived
    spec = tables["BridgeTable"]
    kwargs = spec["create_table"]
    # Then they carry the declared keys, attributes, billing and indexes
    assert set(tables) == {"BridgeTable"}
    assert _keys(kwargs["KeySchema"]) == [("pk", "HASH"), ("sk", "RANGE")]
    assert kwargs["AttributeDefinitions"] == declared["AttributeDefinitions"]
    assert kwargs["BillingMode"] == "PAY_PER_REQUEST"
    indexes = {i["IndexName"]: _keys(i["KeySchema"]) for i in kwargs["GlobalSecondaryIndexes"]}
    assert indexes == {
        "by-item-barcode": [("item_key", "HASH")],
        "attention": [("attention_key", "HASH"), ("attention_at", "RANGE")],
        "reconciliation": [("open_key", "HASH"), ("next_check_at", "RANGE")],
    }
    assert all(i["Projection"] == {"ProjectionType": "ALL"} for i in kwargs["GlobalSecondaryIndexes"])
    # And every key attribute is a defined string, every definition a key (DynamoDB refuses others)
    key_names = {k for k, _ in _keys(kwargs["KeySchema"])} | {k for ks in indexes.values() for k, _ in ks}
    defined = {d["AttributeName"]: d["AttributeType"] for d in kwargs["AttributeDefinitions"]}
    assert set(defined) == key_names
    assert set(defined.values()) == {"S"}
    # And the store uses exactly these index names and TTL attribute
    assert {keys.ITEM_INDEX, keys.ATTENTION_INDEX, keys.RECONCILIATION_INDEX} == set(indexes)
    assert spec["ttl_attribute"] == keys.TTL_ATTRIBUTE == "expires_at"


SMALL_TABLE = {
    "Type": "AWS::DynamoDB::Table",
    "Properties": {
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
        "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
        "TimeToLiveSpecification": {"AttributeName": "expiration", "Enabled": True},
    },
}
WITH_SMALL_TABLE = {**TEMPLATE, "Resources": {**RESOURCES, "SmallTable": SMALL_TABLE}}


def test_a_table_with_a_hash_key_only_is_derived_as_declared() -> None:
    # Given a template with a second table, a hash key only and no index; When it is derived
    spec = dynamodb_tables(WITH_SMALL_TABLE)["SmallTable"]
    # Then its key, attributes and TTL are the declared ones, and it has no index
    assert _keys(spec["create_table"]["KeySchema"]) == [("id", "HASH")]
    assert spec["ttl_attribute"] == "expiration"
    assert spec["create_table"]["AttributeDefinitions"] == [{"AttributeName": "id", "AttributeType": "S"}]
    assert "GlobalSecondaryIndexes" not in spec["create_table"]
    assert spec["ttl_attribute"] == "expiration"


def test_parameter_defaults_resolve_and_deploy_time_values_are_refused() -> None:
    # Given a table whose TTL attribute is a parameter and one whose billing is a condition
    text = """
Parameters:
  TtlName: {Type: String, Default: gone_at}
Resources:
  T:
    Type: AWS::DynamoDB::Table
    Properties:
      TableName: !Sub "${AWS::StackName}-t"
      BillingMode: PAY_PER_REQUEST
      AttributeDefinitions: [{AttributeName: id, AttributeType: S}]
      KeySchema: [{AttributeName: id, KeyType: HASH}]
      TimeToLiveSpecification: {AttributeName: !Ref TtlName, Enabled: true}
  U:
    Type: AWS::DynamoDB::Table
    Properties:
      BillingMode: !If [IsProd, PROVISIONED, PAY_PER_REQUEST]
      AttributeDefinitions: [{AttributeName: id, AttributeType: S}]
      KeySchema: [{AttributeName: id, KeyType: HASH}]
"""
    template = parse_template(text)
    # When T alone is derived, the parameter default is used and the deploy-time name ignored
    del template["Resources"]["U"]
    spec = dynamodb_tables(template)["T"]
    assert spec["ttl_attribute"] == "gone_at"
    assert spec["table_name"] is None
    # Then a value only known at deploy time is refused
    with pytest.raises(TemplateError, match=r"U\.BillingMode"):
        dynamodb_tables(parse_template(text))


@pytest.fixture
def dynamodb_client(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    with mock_aws():
        yield boto3.client("dynamodb", region_name="eu-west-1")


def test_created_tables_match_the_template_with_ttl(dynamodb_client: Any) -> None:
    # Given moto; When the template's tables are created under test names
    create_dynamodb_tables(dynamodb_client, WITH_SMALL_TABLE, {"BridgeTable": "b", "SmallTable": "i"})
    # Then DynamoDB describes the declared keys and indexes
    bridge = dynamodb_client.describe_table(TableName="b")["Table"]
    assert _keys(bridge["KeySchema"]) == [("pk", "HASH"), ("sk", "RANGE")]
    assert {i["IndexName"]: _keys(i["KeySchema"]) for i in bridge["GlobalSecondaryIndexes"]} == {
        i["IndexName"]: _keys(i["KeySchema"])
        for i in RESOURCES["BridgeTable"]["Properties"]["GlobalSecondaryIndexes"]
    }
    assert bridge["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    small = dynamodb_client.describe_table(TableName="i")["Table"]
    assert _keys(small["KeySchema"]) == [("id", "HASH")]
    # And TTL is on, on both tables, with the declared attributes
    for name, attribute in [("b", "expires_at"), ("i", "expiration")]:
        ttl = dynamodb_client.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", attribute)


def test_create_refuses_names_of_unknown_tables(dynamodb_client: Any) -> None:
    # Given a name for a resource that is not a table; Then nothing is created
    with pytest.raises(TemplateError, match="BridgeBus"):
        create_dynamodb_tables(dynamodb_client, TEMPLATE, {"BridgeBus": "x"})
    assert dynamodb_client.list_tables()["TableNames"] == []
