"""``make demo`` (``python -m sandbox demo``), run as a new user runs it: a process of its own, its own
sandbox on free ports. It must tell the whole story (every chapter, the failure and its retry, the WMS-first
return, the ending in WMS and the bridge) and exit 0 only when every step came out right.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.e2e


def run_demo(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sandbox", "demo", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,  # a hang guard only
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "layers" / "domain"), str(ROOT)])},
        check=False,
    )


@pytest.mark.timeout(960)
def test_the_demo_tells_a_whole_loan_and_exits_0_when_everything_came_out_right() -> None:
    answer = run_demo()
    out = answer.stdout
    assert answer.returncode == 0, out[-6000:] + answer.stderr[-3000:]
    chapters = [
        "1. A patron at east",
        "2. West's ILL staff",
        "3. East's ILL staff",
        "4. East's systems staff",
        "5. East's circulation desk (WMS)",
        "6. The patron",
        "7. East's ILL staff",
        "8. West's ILL staff",
        "9. Where everything ended",
    ]
    positions = [out.index(chapter) for chapter in chapters]
    assert positions == sorted(positions)
    # the story, as the timeline tables tell it: the lent item checked out, the unknown patron, the retry that
    # made the temp item and hold, the WMS-first return passed on to ReShare, the lent item checked back in
    story = out[positions[1] :]
    for line in (
        "CheckOutItem",
        "does not know patron",
        "attention raised",
        "AcceptItem",
        "performAction patronReturnedItem",
        "CheckInItem",
    ):
        assert line in story, line
    assert "EAST-P-7001" not in out  # the patron's barcode only ever masked, as staff see it
    assert '{"_aws"' not in out and '"level":' not in out  # the story, not the functions' log lines
    assert "WRONG" not in out and "Every step came out right" in out


@pytest.mark.timeout(960)
def test_the_demo_exits_1_when_a_step_does_not_come_out_right() -> None:
    # Given a WMS that answers no LookupUser (east's check-in probe): the WMS-first return cannot be noticed
    answer = run_demo("--option", "lookup_user=unsupported")
    # Then the demo says what went wrong and fails
    assert answer.returncode == 1, answer.stdout[-6000:]
    assert "went wrong" in answer.stdout or "could not go on" in answer.stdout
    assert "Every step came out right" not in answer.stdout
