"""The domain layer ships only what the python3.12 runtime lacks, and the AWS SDK is one consistent pair.

The layer is built exactly as `sam build` builds it (template.yaml's DomainLayer uses layers/domain/Makefile).
The runtime carries boto3 and botocore; a botocore in the layer would shadow the runtime's and run under the
runtime's boto3, so the layer must hold neither, and everything it does hold must have its dependencies met by
the layer itself or by the runtime's SDK.
"""

from __future__ import annotations

import email
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from bench.layer import build
from sandbox.template import load_template

ROOT = Path(__file__).resolve().parents[2]
RUNTIME_SDK = {"boto3", "botocore", "s3transfer", "jmespath"}
# What the python3.12 runtime is: CPython 3.12 on Amazon Linux 2023, arm64 here (template.yaml).
MARKERS = {
    "python_version": "3.12",
    "python_full_version": "3.12.0",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "aarch64",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "os_name": "posix",
    "extra": "",
}


@pytest.fixture(scope="module")
def layer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("layer"))


def distributions(python: Path) -> dict[str, email.message.Message]:
    found = {}
    for info in python.glob("*.dist-info"):
        meta = email.message_from_string((info / "METADATA").read_text())
        found[canonicalize_name(meta["Name"])] = meta
    return found


def test_the_template_builds_the_layer_with_its_makefile() -> None:
    template = load_template(ROOT / "template.yaml")
    layer = template["Resources"]["DomainLayer"]
    assert layer["Properties"]["ContentUri"] == "layers/domain/"
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.12"]
    assert layer["Metadata"]["BuildMethod"] == "makefile"
    assert "build-DomainLayer:" in (ROOT / "layers/domain/Makefile").read_text()


def test_the_layer_ships_no_aws_sdk(layer: Path) -> None:
    shipped = set(distributions(layer)) | {p.name for p in layer.iterdir()}
    assert not RUNTIME_SDK & shipped, f"the layer ships the runtime's SDK: {sorted(RUNTIME_SDK & shipped)}"


def test_every_dependency_in_the_layer_is_met_by_the_layer_or_the_runtime(layer: Path) -> None:
    shipped = distributions(layer)
    unmet = []
    for name, meta in shipped.items():
        for spec in meta.get_all("Requires-Dist") or []:
            requirement = Requirement(spec)
            if requirement.marker is not None and not requirement.marker.evaluate(MARKERS):
                continue
            dependency = canonicalize_name(requirement.name)
            if dependency in RUNTIME_SDK:
                continue
            if dependency not in shipped:
                unmet.append(f"{name} needs {spec}: not in the layer")
            elif not requirement.specifier.contains(shipped[dependency]["Version"], prereleases=True):
                unmet.append(f"{name} needs {spec}: the layer has {shipped[dependency]['Version']}")
    assert not unmet, unmet


def test_the_layer_holds_the_domain_package_and_arm64_binaries(layer: Path) -> None:
    assert (layer / "illbridge" / "workflow").is_dir()
    binaries = list(layer.rglob("*.so"))
    assert binaries, "lxml and pydantic-core ship compiled modules"
    assert not [so.name for so in binaries if "x86_64" in so.name], "the functions run on arm64"
    assert any("aarch64" in so.name for so in binaries), binaries


def test_the_layer_ships_bytecode_for_the_runtime(layer: Path) -> None:
    """Every module has its CPython 3.12 bytecode beside it, hash-based and unchecked (PEP 552): Lambda mounts
    the layer read-only, so a module without it is compiled from source at every cold start."""
    missing, checked = [], []
    for source in layer.rglob("*.py"):
        compiled = source.parent / "__pycache__" / f"{source.stem}.cpython-312.pyc"
        if not compiled.is_file():
            missing.append(str(source.relative_to(layer)))
            continue
        flags = int.from_bytes(compiled.read_bytes()[4:8], "little")
        if flags != 0b01:  # bit 0: hash-based; bit 1: check the source (off)
            checked.append(str(source.relative_to(layer)))
    assert not missing, missing[:10]
    assert not checked, checked[:10]
    assert (layer / "illbridge" / "workflow" / "__pycache__" / "engine.cpython-312.pyc").is_file()


def test_the_tested_sdk_is_a_consistent_pair() -> None:
    """Tests run boto3 with a botocore it declares it supports, as the runtime ships them."""
    botocore_range = next(
        Requirement(spec).specifier
        for spec in metadata.requires("boto3") or []
        if canonicalize_name(Requirement(spec).name) == "botocore"
    )
    assert isinstance(botocore_range, SpecifierSet)
    assert botocore_range.contains(metadata.version("botocore")), (
        f"boto3 {metadata.version('boto3')} needs botocore {botocore_range}, has {metadata.version('botocore')}"
    )


def test_the_built_layer_has_no_operator_code_and_no_typer_or_rich(layer: Path) -> None:
    """The ``illbridge`` command (typer, rich) lives in illbridge_cli/, outside the layer (test_layer_contents)."""
    from tests.template.test_layer_contents import OPERATOR_CODE, OPERATOR_PACKAGES, python_files

    shipped = set(distributions(layer)) | {p.name.lower() for p in layer.iterdir()}
    assert not shipped & set(OPERATOR_PACKAGES), sorted(shipped & set(OPERATOR_PACKAGES))
    offenders = [str(p) for p in python_files(layer / "illbridge") if OPERATOR_CODE.search(p.read_text())]
    assert offenders == []
