"""Reading ``template.yaml``: the single source of truth for tables (and more) in tests and the sandbox.

``load_template`` parses the SAM/CloudFormation YAML with its short tags (``!Ref``, ``!Sub``, ``!GetAtt``...)
turned into their long forms, so the result looks like the JSON form of the template.
``dynamodb_tables`` derives ``create_table`` arguments from every ``AWS::DynamoDB::Table`` resource, and
``create_dynamodb_tables`` creates them (with their TTL), so moto tables match the deployed ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypedDict

import yaml

DEFAULT_TEMPLATE = Path(__file__).resolve().parent.parent / "template.yaml"

# short tag -> long form key
_INTRINSICS = {
    "Ref": "Ref",
    "Condition": "Condition",
    **{
        name: f"Fn::{name}"
        for name in (
            "And",
            "Base64",
            "Cidr",
            "Equals",
            "FindInMap",
            "GetAZs",
            "GetAtt",
            "If",
            "ImportValue",
            "Join",
            "Length",
            "Not",
            "Or",
            "Select",
            "Split",
            "Sub",
            "ToJsonString",
            "Transform",
        )
    },
}


class TemplateError(ValueError):
    """The template cannot be read, or says something this module cannot derive without deploying."""


class CfnLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that knows CloudFormation's short tags and leaves dates as strings."""


# CloudFormation reads unquoted dates as strings (e.g. AWSTemplateFormatVersion), not as timestamps
CfnLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _construct_intrinsic(loader: CfnLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    long_form = _INTRINSICS.get(tag_suffix)
    if long_form is None:
        raise yaml.constructor.ConstructorError(
            None, None, f"unknown CloudFormation tag !{tag_suffix}", node.start_mark
        )
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if tag_suffix == "GetAtt":  # !GetAtt Resource.Attribute(.More) -> [Resource, Attribute(.More)]
            resource, _, attribute = str(value).partition(".")
            value = [resource, attribute]
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    elif isinstance(node, yaml.MappingNode):
        value = loader.construct_mapping(node, deep=True)
    else:  # pragma: no cover - yaml has no other node kinds
        raise yaml.constructor.ConstructorError(None, None, "unexpected node", node.start_mark)
    return {long_form: value}


CfnLoader.add_multi_constructor("!", _construct_intrinsic)


def parse_template(text: str) -> dict[str, Any]:
    """A template's YAML text, with short tags in long form."""
    try:
        document = yaml.load(text, Loader=CfnLoader)  # noqa: S506 - CfnLoader is a SafeLoader
    except yaml.YAMLError as exc:
        raise TemplateError(f"template is not valid YAML: {exc}") from exc
    if not isinstance(document, dict):
        raise TemplateError("template is not a mapping")
    return document


def load_template(path: str | Path = DEFAULT_TEMPLATE) -> dict[str, Any]:
    """``template.yaml`` (or another template file), with short tags in long form."""
    return parse_template(Path(path).read_text(encoding="utf-8"))


# --- DynamoDB ------------------------------------------------------------------------------------------


class TableSpec(TypedDict):
    """What a table resource says, in the shape boto3 wants."""

    create_table: dict[str, Any]  # kwargs of create_table, without TableName
    table_name: str | None  # the literal TableName property, if the template sets one
    ttl_attribute: str | None  # enabled TTL attribute, if any


def _literal(value: Any, template: dict[str, Any], where: str) -> Any:
    """A property value with ``Ref`` to a parameter replaced by its default; other intrinsics refused."""
    if isinstance(value, dict):
        if set(value) == {"Ref"}:
            parameter = template.get("Parameters", {}).get(value["Ref"])
            if parameter is None or "Default" not in parameter:
                raise TemplateError(f"{where}: cannot resolve {value} without deploying")
            return parameter["Default"]
        if len(value) == 1 and next(iter(value)).startswith("Fn::"):
            raise TemplateError(f"{where}: cannot resolve {value} without deploying")
        return {k: _literal(v, template, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_literal(v, template, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


_TABLE_PROPERTIES = (
    "AttributeDefinitions",
    "KeySchema",
    "BillingMode",
    "ProvisionedThroughput",
    "GlobalSecondaryIndexes",
    "LocalSecondaryIndexes",
    "StreamSpecification",
    "TimeToLiveSpecification",
)


def dynamodb_tables(template: dict[str, Any]) -> dict[str, TableSpec]:
    """For each ``AWS::DynamoDB::Table`` resource (by logical id): its create_table kwargs and TTL."""
    tables: dict[str, TableSpec] = {}
    for logical_id, resource in (template.get("Resources") or {}).items():
        if not isinstance(resource, dict) or resource.get("Type") != "AWS::DynamoDB::Table":
            continue
        raw = resource.get("Properties") or {}
        # only what create_table needs is resolved: other properties may use deploy-time intrinsics
        props = {
            name: _literal(raw[name], template, f"{logical_id}.{name}")
            for name in _TABLE_PROPERTIES
            if name in raw
        }
        billing = props.get("BillingMode", "PROVISIONED")
        kwargs: dict[str, Any] = {
            "AttributeDefinitions": props["AttributeDefinitions"],
            "KeySchema": props["KeySchema"],
            "BillingMode": billing,
        }
        if billing == "PROVISIONED":
            kwargs["ProvisionedThroughput"] = props["ProvisionedThroughput"]
        for kind in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
            if props.get(kind):
                kwargs[kind] = [
                    {
                        k: v
                        for k, v in index.items()
                        if k in ("IndexName", "KeySchema", "Projection", "ProvisionedThroughput")
                    }
                    for index in props[kind]
                ]
        if props.get("StreamSpecification"):
            kwargs["StreamSpecification"] = {"StreamEnabled": True, **props["StreamSpecification"]}
        ttl = props.get("TimeToLiveSpecification") or {}
        table_name = raw.get("TableName")
        tables[logical_id] = {
            "create_table": kwargs,
            "table_name": table_name if isinstance(table_name, str) else None,
            "ttl_attribute": ttl.get("AttributeName") if ttl.get("Enabled") else None,
        }
    return tables


def create_dynamodb_tables(client: Any, template: dict[str, Any], names: dict[str, str]) -> None:
    """Create every table of the template (named by ``names[logical_id]``, else its TableName, else its
    logical id) and enable its TTL. ``client`` is a boto3 DynamoDB client (or resource)."""
    client = getattr(client.meta, "client", client)  # a resource's client
    tables = dynamodb_tables(template)
    unknown = set(names) - set(tables)
    if unknown:
        raise TemplateError(f"not DynamoDB tables of the template: {sorted(unknown)}")
    for logical_id, spec in tables.items():
        table_name = names.get(logical_id) or spec["table_name"] or logical_id
        client.create_table(TableName=table_name, **spec["create_table"])
        client.get_waiter("table_exists").wait(TableName=table_name, WaiterConfig={"Delay": 1})
        if spec["ttl_attribute"]:
            client.update_time_to_live(
                TableName=table_name,
                TimeToLiveSpecification={"AttributeName": spec["ttl_attribute"], "Enabled": True},
            )
