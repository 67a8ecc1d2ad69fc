"""The domain layer's size: build it as `sam build` does (layers/domain/Makefile) and weigh what it ships.

``python -m bench.layer`` prints the total and the largest packages as JSON on its last line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

LAYER_SOURCE = Path(__file__).resolve().parents[1] / "layers" / "domain"


def build(artifacts: Path, platform: str | None = None) -> Path:
    """Run the layer's build target into ``artifacts``; returns the directory Lambda mounts as /opt/python.
    ``platform``: the Makefile's ``PLATFORM`` (pip's platform options; "" builds for this machine)."""
    env = {**os.environ, "ARTIFACTS_DIR": str(artifacts), "PYTHON": sys.executable}
    subprocess.run(
        ["make", "--no-print-directory", "-C", str(LAYER_SOURCE), "build-DomainLayer"]
        + ([] if platform is None else [f"PLATFORM={platform}"]),
        check=True,
        env=env,
        capture_output=True,
        text=True,
    )
    return artifacts / "python"


def size(path: Path) -> int:
    return (
        sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        if path.is_dir()
        else path.stat().st_size
    )


def run() -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        python = build(Path(tmp))
        packages = {
            entry.name: size(entry) for entry in python.iterdir() if not entry.name.endswith(".dist-info")
        }
        total = size(python)
    largest = sorted(packages.items(), key=lambda item: -item[1])[:6]
    return {"total_mb": round(total / 1e6, 1), "largest": [[name, round(b / 1e6, 1)] for name, b in largest]}


def line(result: dict[str, object]) -> str:
    largest = ", ".join(f"{name} {mb} MB" for name, mb in result["largest"])  # type: ignore[attr-defined]
    return f"| {result['total_mb']} MB | {largest} |"


if __name__ == "__main__":
    print(json.dumps(run()))
