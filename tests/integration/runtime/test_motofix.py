"""The sandbox's faster moto TransactWriteItems (sandbox/runtime/motofix.py) keeps DynamoDB's all-or-nothing:
a cancelled transaction leaves every item as it was (updated, put and deleted ones alike), a committed one
applies every part, and the cancellation reasons are moto's own."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from bench.transactions import create_table
from sandbox.runtime import aws


@pytest.fixture(scope="module")
def dynamodb() -> Iterator[Any]:
    server = aws.MotoServer()
    url = server.start()
    try:
        client = aws.client("dynamodb", url, "eu-west-1")
        create_table(client)
        for n in range(20):
            client.put_item(
                TableName="t", Item={"pk": {"S": f"p{n % 4}"}, "sk": {"S": f"s{n}"}, "v": {"N": "1"}}
            )
        yield client
    finally:
        server.stop()


def everything(client: Any) -> list[dict[str, Any]]:
    return sorted(client.scan(TableName="t")["Items"], key=lambda i: (i["pk"]["S"], i["sk"]["S"]))


def key(pk: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def test_a_cancelled_transaction_changes_nothing(dynamodb: Any) -> None:
    before = everything(dynamodb)
    with pytest.raises(ClientError) as raised:
        dynamodb.transact_write_items(
            TransactItems=[
                {
                    "Update": {
                        "TableName": "t",
                        "Key": key("p0", "s0"),
                        "UpdateExpression": "SET v = v + :one, w = :w",
                        "ExpressionAttributeValues": {":one": {"N": "1"}, ":w": {"S": "changed"}},
                    }
                },
                {"Put": {"TableName": "t", "Item": {**key("p9", "new"), "v": {"N": "5"}}}},
                {"Delete": {"TableName": "t", "Key": key("p1", "s1")}},
                {
                    "ConditionCheck": {
                        "TableName": "t",
                        "Key": key("p2", "s2"),
                        "ConditionExpression": "v = :two",
                        "ExpressionAttributeValues": {":two": {"N": "2"}},
                    }
                },
            ]
        )
    assert raised.value.response["Error"]["Code"] == "TransactionCanceledException"
    assert "ConditionalCheckFailed" in str(raised.value)
    assert everything(dynamodb) == before


def test_a_committed_transaction_applies_every_part(dynamodb: Any) -> None:
    dynamodb.transact_write_items(
        TransactItems=[
            {
                "Update": {
                    "TableName": "t",
                    "Key": key("p3", "s3"),
                    "UpdateExpression": "SET v = v + :one",
                    "ExpressionAttributeValues": {":one": {"N": "1"}},
                }
            },
            {"Put": {"TableName": "t", "Item": {**key("p8", "new"), "v": {"N": "7"}}}},
        ]
    )
    assert dynamodb.get_item(TableName="t", Key=key("p3", "s3"))["Item"]["v"] == {"N": "2"}
    assert dynamodb.get_item(TableName="t", Key=key("p8", "new"))["Item"]["v"] == {"N": "7"}


def test_backups_do_not_outlive_their_transaction(dynamodb: Any) -> None:
    from moto.dynamodb.models.table import Table

    # Given the tables moto keeps now
    before = len(Table.instances_tracked)
    # When transactions commit and one is cancelled (its backup becomes the table)
    for n in range(5):
        dynamodb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": "t", "Item": {**key("p9", f"x{n}"), "v": {"N": "1"}}}},
                {"Put": {"TableName": "t", "Item": {**key("p8", f"x{n}"), "v": {"N": "1"}}}},
            ]
        )
    with pytest.raises(ClientError):
        dynamodb.transact_write_items(
            TransactItems=[
                {
                    "Put": {
                        "TableName": "t",
                        "Item": {**key("p9", "x0"), "v": {"N": "2"}},
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                }
            ]
        )
    # Then moto keeps no more table objects than before, give or take the backup rollback put in place
    assert len(Table.instances_tracked) <= before + 1
