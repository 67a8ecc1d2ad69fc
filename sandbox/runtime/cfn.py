"""A minimal CloudFormation intrinsic resolver for ``template.yaml``, as a deployed stack would answer.

Only what a SAM template like ours uses: ``Ref`` (parameters, pseudo parameters, resources), ``Fn::GetAtt``
(``Arn``, ``QueueName``, ``QueueUrl``, ``TopicName``, ``TopicArn``, ``Name``, ``StreamArn``), ``Fn::Sub`` (both
forms), ``Fn::Join``, ``Fn::Select``, ``Fn::Split`` and ``Fn::ToJsonString``. Anything else raises
:class:`UnresolvableError` naming the place, so a template change the sandbox cannot follow fails loudly.

Physical names are deterministic (``<stack>-<LogicalId>`` unless the resource names itself), and ``Ref``
returns what CloudFormation returns for that resource type (a queue's URL, a topic's ARN, a table's name...).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

PSEUDO_PARAMETERS = (
    "AWS::AccountId",
    "AWS::NoValue",
    "AWS::Partition",
    "AWS::Region",
    "AWS::StackId",
    "AWS::StackName",
    "AWS::URLSuffix",
)
# SAM's implicit REST API (the `Api` events of functions without RestApiId)
IMPLICIT_API = "ServerlessRestApi"
# resource types whose physical name comes from a property of theirs, if set
_NAME_PROPERTIES = {
    "AWS::DynamoDB::Table": "TableName",
    "AWS::SQS::Queue": "QueueName",
    "AWS::SNS::Topic": "TopicName",
    "AWS::Events::EventBus": "Name",
    "AWS::Events::Rule": "Name",
    "AWS::Serverless::Function": "FunctionName",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::Serverless::LayerVersion": "LayerName",
}
_MAX_NAME = {"AWS::SQS::Queue": 80, "AWS::Events::Rule": 64, "AWS::Serverless::Function": 64}
_SUB_VARIABLE = re.compile(r"\$\{([^}!][^}]*)\}")


class UnresolvableError(ValueError):
    """The template uses something the sandbox cannot resolve without deploying."""


@dataclass
class Stack:
    """The template of one (local) stack, and how its intrinsics resolve."""

    template: dict[str, Any]
    stack_name: str = "reshare-wms-bridge-local"
    region: str = "eu-west-1"
    account_id: str = "123456789012"  # moto's default account
    partition: str = "aws"
    url_suffix: str = "amazonaws.com"
    sqs_endpoint: str = ""  # base URL queue URLs start with (the moto server), e.g. http://127.0.0.1:5055
    api_id: str = "local"
    parameter_overrides: dict[str, Any] = field(default_factory=dict)
    # ids moto chose for resources it names itself (Cognito user pools and app clients): what Ref answers
    physical_ids: dict[str, str] = field(default_factory=dict)

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        return self.template.get("Resources") or {}

    def resources_of(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {
            logical_id: resource
            for logical_id, resource in self.resources.items()
            if isinstance(resource, dict) and resource.get("Type") == resource_type
        }

    def resource_type(self, logical_id: str) -> str:
        resource = self.resources.get(logical_id)
        if not isinstance(resource, dict):
            raise UnresolvableError(f"{logical_id!r} is not a resource of the template")
        return str(resource.get("Type"))

    # --- parameters -------------------------------------------------------------------------------------

    def parameter(self, name: str) -> Any:
        if name in self.parameter_overrides:
            return self.parameter_overrides[name]
        spec = (self.template.get("Parameters") or {}).get(name)
        if spec is None:
            raise UnresolvableError(f"no parameter {name!r}")
        if "Default" not in spec:
            raise UnresolvableError(f"parameter {name!r} has no Default (pass it as an override)")
        value = spec["Default"]
        if spec.get("Type") == "Number" and isinstance(value, str):
            value = float(value) if "." in value else int(value)
        return value

    def pseudo(self, name: str) -> Any:
        return {
            "AWS::AccountId": self.account_id,
            "AWS::NoValue": None,
            "AWS::Partition": self.partition,
            "AWS::Region": self.region,
            "AWS::StackId": (
                f"arn:{self.partition}:cloudformation:{self.region}:{self.account_id}:stack/"
                f"{self.stack_name}/00000000-0000-0000-0000-000000000000"
            ),
            "AWS::StackName": self.stack_name,
            "AWS::URLSuffix": self.url_suffix,
        }[name]

    # --- names, ARNs, URLs ------------------------------------------------------------------------------

    def physical_name(self, logical_id: str) -> str:
        """The name the resource gets: its own name property, else ``<stack>-<LogicalId>``."""
        if logical_id == IMPLICIT_API:
            return self.api_id
        resource_type = self.resource_type(logical_id)
        prop = _NAME_PROPERTIES.get(resource_type)
        if prop:
            raw = (self.resources[logical_id].get("Properties") or {}).get(prop)
            if raw is not None:
                return str(self.resolve(raw, where=f"{logical_id}.{prop}"))
        name = f"{self.stack_name}-{logical_id}"
        limit = _MAX_NAME.get(resource_type)
        return name[:limit] if limit else name

    def arn(self, logical_id: str) -> str:
        resource_type = self.resource_type(logical_id)
        name = self.physical_name(logical_id)
        base = f"arn:{self.partition}"
        where = f"{self.region}:{self.account_id}"
        arns = {
            "AWS::DynamoDB::Table": f"{base}:dynamodb:{where}:table/{name}",
            "AWS::SQS::Queue": f"{base}:sqs:{where}:{name}",
            "AWS::SNS::Topic": f"{base}:sns:{where}:{name}",
            "AWS::Events::EventBus": f"{base}:events:{where}:event-bus/{name}",
            "AWS::Serverless::Function": f"{base}:lambda:{where}:function:{name}",
            "AWS::Lambda::Function": f"{base}:lambda:{where}:function:{name}",
            "AWS::Serverless::LayerVersion": f"{base}:lambda:{where}:layer:{name}:1",
        }
        if resource_type == "AWS::Events::Rule":
            bus = (self.resources[logical_id].get("Properties") or {}).get("EventBusName")
            bus_name = self.resolve(bus, where=f"{logical_id}.EventBusName") if bus else "default"
            prefix = "" if bus_name == "default" else f"{bus_name}/"
            return f"{base}:events:{where}:rule/{prefix}{name}"
        if resource_type not in arns:
            raise UnresolvableError(f"no ARN for {logical_id} ({resource_type})")
        return arns[resource_type]

    def queue_url(self, logical_id: str) -> str:
        if not self.sqs_endpoint:
            raise UnresolvableError("queue URLs need the SQS endpoint (moto) first")
        return f"{self.sqs_endpoint.rstrip('/')}/{self.account_id}/{self.physical_name(logical_id)}"

    def ref(self, name: str) -> Any:
        """``Ref`` as CloudFormation answers it."""
        if name in PSEUDO_PARAMETERS:
            return self.pseudo(name)
        if name in (self.template.get("Parameters") or {}) or name in self.parameter_overrides:
            return self.parameter(name)
        if name == IMPLICIT_API:
            return self.api_id
        if name in self.physical_ids:
            return self.physical_ids[name]
        resource_type = self.resource_type(name)
        if resource_type == "AWS::SQS::Queue":
            return self.queue_url(name)
        if resource_type == "AWS::SNS::Topic":
            return self.arn(name)
        if resource_type == "AWS::Serverless::LayerVersion":
            return self.arn(name)
        # tables, buses, rules, functions: the name; anything else: its physical id (we use the name too)
        return self.physical_name(name)

    def get_att(self, logical_id: str, attribute: str) -> Any:
        resource_type = self.resource_type(logical_id)
        if attribute == "Arn" or (resource_type == "AWS::SNS::Topic" and attribute == "TopicArn"):
            return self.arn(logical_id)
        known = {
            ("AWS::SQS::Queue", "QueueName"): self.physical_name,
            ("AWS::SQS::Queue", "QueueUrl"): self.queue_url,
            ("AWS::SNS::Topic", "TopicName"): self.physical_name,
            ("AWS::Events::EventBus", "Name"): self.physical_name,
            ("AWS::DynamoDB::Table", "StreamArn"): lambda lid: f"{self.arn(lid)}/stream/local",
        }
        getter = known.get((resource_type, attribute))
        if getter is None:
            raise UnresolvableError(f"Fn::GetAtt {logical_id}.{attribute} ({resource_type}) is not supported")
        return getter(logical_id)

    def condition(self, name: str) -> bool:
        """A template condition (``Conditions``), evaluated with the stack's parameters as CloudFormation does."""
        conditions = self.template.get("Conditions") or {}
        if name not in conditions:
            raise UnresolvableError(f"no condition {name!r} in the template")
        return bool(self.resolve(conditions[name], f"Conditions.{name}"))

    # --- the resolver -----------------------------------------------------------------------------------

    def resolve(self, value: Any, where: str = "template") -> Any:
        """``value`` with every intrinsic function replaced by what the deployed stack would give."""
        if isinstance(value, list):
            return [self.resolve(v, f"{where}[{i}]") for i, v in enumerate(value)]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self.ref(str(arg))
            if key == "Fn::GetAtt":
                parts = arg.split(".", 1) if isinstance(arg, str) else list(arg)
                return self.get_att(str(parts[0]), str(self.resolve(parts[1], where)))
            if key == "Fn::Sub":
                return self._sub(arg, where)
            if key == "Fn::Join":
                delimiter, items = arg
                return str(delimiter).join(str(v) for v in self.resolve(items, where))
            if key == "Fn::Select":
                index, items = arg
                return self.resolve(items, where)[int(self.resolve(index, where))]
            if key == "Fn::Split":
                delimiter, text = arg
                return str(self.resolve(text, where)).split(delimiter)
            if key == "Fn::ToJsonString":
                return json.dumps(self.resolve(arg, where), separators=(",", ":"))
            if key == "Fn::If":
                condition, if_true, if_false = arg
                return self.resolve(if_true if self.condition(str(condition)) else if_false, where)
            if key == "Fn::Equals":
                left, right = self.resolve(arg, where)
                return str(left) == str(right)
            if key.startswith("Fn::") or key == "Condition":
                raise UnresolvableError(f"{where}: {key} is not supported by the sandbox")
        return {k: self.resolve(v, f"{where}.{k}") for k, v in value.items()}

    def _sub(self, arg: Any, where: str) -> str:
        if isinstance(arg, list):
            text, variables = arg[0], {k: self.resolve(v, where) for k, v in (arg[1] or {}).items()}
        else:
            text, variables = arg, {}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1).strip()
            if name in variables:
                return str(variables[name])
            if "." in name and name.split(".", 1)[0] in self.resources:
                resource, attribute = name.split(".", 1)
                return str(self.get_att(resource, attribute))
            return str(self.ref(name))

        return _SUB_VARIABLE.sub(replace, str(text)).replace("${!", "${")
