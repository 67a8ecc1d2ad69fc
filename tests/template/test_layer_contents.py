"""The Lambda layer ships the bridge's domain code and its runtime dependencies, nothing for operators: the
``illbridge`` command (typer, rich, tables, progress bars) lives in ``illbridge_cli/`` outside it.

Checked here on the layer's source tree (what ``sam build`` copies: ``ContentUri: layers/domain/``), and on the
layer built as ``sam build`` builds it in test_layer.py.
"""

from __future__ import annotations

import re
from pathlib import Path

from sandbox.template import load_template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = load_template(ROOT / "template.yaml")
LAYER_SOURCE = ROOT / TEMPLATE["Resources"]["DomainLayer"]["Properties"]["ContentUri"]
OPERATOR_PACKAGES = ("typer", "rich", "click", "illbridge_cli")
# what an operator's command is made of: argument parsing, a console entry point, terminal rendering
OPERATOR_CODE = re.compile(
    r"^\s*(import (typer|rich|click|argparse)\b|from (typer|rich|click|argparse|illbridge_cli)\b)"
    r"|^if __name__ == .__main__.:",
    re.MULTILINE,
)


def python_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def test_the_layer_source_has_no_operator_code() -> None:
    files = python_files(LAYER_SOURCE / "illbridge")
    assert files
    offenders = [str(p.relative_to(ROOT)) for p in files if OPERATOR_CODE.search(p.read_text())]
    assert offenders == []
    assert not (LAYER_SOURCE / "illbridge" / "ops.py").exists()
    assert not list((LAYER_SOURCE / "illbridge").rglob("__main__.py"))


def test_the_layer_requirements_do_not_ship_typer_or_rich() -> None:
    names = {
        re.split(r"[=<>\[; ]", line.strip(), maxsplit=1)[0].lower()
        for line in (LAYER_SOURCE / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert names and not names & set(OPERATOR_PACKAGES)


def test_the_operator_command_is_outside_the_layer_and_declared() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'illbridge = "illbridge_cli.app:main"' in pyproject
    assert (ROOT / "illbridge_cli" / "app.py").is_file()
    assert not (LAYER_SOURCE / "illbridge_cli").exists()
