"""What a DynamoDB transaction costs in the sandbox's moto, with and without ``sandbox/runtime/motofix.py``.

moto 5 deep-copies every table a ``TransactWriteItems`` names before applying it; the sandbox backs up only the
named items. N items are put in a table first, then 200 transactions of two puts each are timed, in a fresh
process per variant and size. What must hold: with the fix, the cost per transaction does not grow with the
table (without it, it grows in proportion). ``python -m bench.transactions`` prints the figures as JSON.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

SIZES = (300, 3000)
TRANSACTIONS = 200


def create_table(client: Any, name: str = "t") -> None:
    """A table keyed like the bridge's (``pk``, ``sk``), on demand."""
    client.create_table(
        TableName=name,
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )


def measure(variant: str, size: int) -> dict[str, Any]:
    from sandbox.runtime import aws, motofix

    if variant == "moto":
        motofix._installed = True  # leave moto's own transact_write_items in place
    server = aws.MotoServer()
    url = server.start()
    try:
        client = aws.client("dynamodb", url, "eu-west-1")
        create_table(client)
        for start in range(0, size, 25):  # the table filled 25 items a call (what is timed is below)
            items = [
                {"pk": {"S": f"p{n // 10}"}, "sk": {"S": f"s{n}"}, "v": {"S": "x" * 200}}
                for n in range(start, min(size, start + 25))
            ]
            client.batch_write_item(RequestItems={"t": [{"PutRequest": {"Item": item}} for item in items]})
        began = time.perf_counter()
        for n in range(TRANSACTIONS):
            client.transact_write_items(
                TransactItems=[
                    {"Put": {"TableName": "t", "Item": {"pk": {"S": f"q{n}"}, "sk": {"S": side}}}}
                    for side in ("a", "b")
                ]
            )
        spent = time.perf_counter() - began
    finally:
        server.stop()
    return {"variant": variant, "items": size, "ms_per_transaction": round(1000 * spent / TRANSACTIONS, 2)}


def run() -> list[dict[str, Any]]:
    results = []
    for size in SIZES:
        for variant in ("moto", "sandbox"):
            out = subprocess.run(
                [sys.executable, "-m", "bench.transactions", variant, str(size)],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| items in the table | moto's transact_write_items | the sandbox's (motofix) | ratio |",
        "|---:|---:|---:|---:|",
    ]
    for size in SIZES:
        moto, fixed = (
            next(r["ms_per_transaction"] for r in results if r["items"] == size and r["variant"] == v)
            for v in ("moto", "sandbox")
        )
        lines.append(f"| {size} | {moto} ms | {fixed} ms | {moto / fixed:.1f}x |")
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) == 3:
        print(json.dumps(measure(sys.argv[1], int(sys.argv[2]))))
    else:
        print(table(run()))
