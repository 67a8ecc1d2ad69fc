"""Running the operator's ``illbridge`` command inside a test, against the sandbox the test started.

``--env`` makes it use the environment the running ``Sandbox`` set (the functions' tables, bus, topic and
moto); the output is rich's, wide enough that nothing wraps, without colours.
"""

from __future__ import annotations

import json
from typing import Any

from typer.testing import CliRunner

from illbridge_cli import app as cli

WIDTH = 400


def illbridge(*argv: str, target: tuple[str, ...] = ("--env",)) -> tuple[int, str]:
    """(exit code, what it printed on stdout and stderr)."""
    cli.out.width = cli.err.width = WIDTH
    cli.out.no_color = cli.err.no_color = True
    result = CliRunner().invoke(cli.app, [*target, *argv], catch_exceptions=False)
    return result.exit_code, result.output


def illbridge_json(*argv: str) -> Any:
    code, output = illbridge(*argv, "--json")
    assert code in (0, 1), output
    return json.loads(output[output.index("[") if output.lstrip().startswith("[") else output.index("{") :])
