"""bench/RESULTS.md keeps what a run does not rewrite: the chaos rows of earlier runs, and the notes and
hand-written sections that follow them (``python -m bench`` and ``python -m bench chaos`` both rewrite the file)."""

from __future__ import annotations

import logging
from pathlib import Path

from bench import chaos

ROW = (
    "| {seed} | {pairs} (1 multi-volume, 1 returned in WMS first) | 1: 0 5xx | 1: 0 5xx | 2 | 30 min each"
    " | 0 | 0 | 0 | 0 | 0 | {t} s |"
)

EARLIER = (
    "# Benchmark results\n\n## Something else\n\nfigures\n"
    + chaos.section("", ROW.format(seed=1, pairs=60, t=10.0))
    + "\nA note on the runs above.\n\n## What the WMS matrix costs CI\n\nhand-written table\n"
)


def test_a_new_run_adds_its_row_and_keeps_the_rows_notes_and_sections_after_it() -> None:
    rewritten = chaos.section(EARLIER, ROW.format(seed=2, pairs=300, t=20.0))
    assert ROW.format(seed=1, pairs=60, t=10.0) in rewritten
    assert ROW.format(seed=2, pairs=300, t=20.0) in rewritten
    assert rewritten.endswith(
        "\nA note on the runs above.\n\n## What the WMS matrix costs CI\n\nhand-written table\n"
    )
    assert rewritten.count(chaos.SECTION_END) == 1


def test_a_run_of_the_same_seed_and_size_replaces_its_row() -> None:
    rewritten = chaos.section(EARLIER, ROW.format(seed=1, pairs=60, t=99.0))
    assert ROW.format(seed=1, pairs=60, t=99.0) in rewritten
    assert ROW.format(seed=1, pairs=60, t=10.0) not in rewritten


def test_the_chaos_command_keeps_the_sections_before_and_after_its_own(tmp_path: Path, monkeypatch) -> None:
    results = tmp_path / "bench-results"
    results.write_text(EARLIER)
    fake = {
        "seed": 3, "pairs": 6, "multi_volume": 2, "wms_first": 2, "wms_calls": 1, "wms_faults": {},
        "reshare_calls": 1, "reshare_faults": {}, "token_expiries": 0, "event_copies": 12, "duplicates": [],
        "losses": [], "attention": [], "refused": [], "late": [], "dead_letters": {}, "outbox": 0, "seconds": 1.0,
    }  # fmt: skip
    monkeypatch.setattr(chaos, "run", lambda pairs, seed: fake)
    disabled = logging.root.manager.disable
    try:
        assert chaos.main(["--pairs", "6", "--seed", "3"], results=results) == 0
    finally:  # the command turns logging off for its process: give this one its logging back
        logging.disable(disabled)
    text = results.read_text()
    assert text.startswith("# Benchmark results\n\n## Something else\n\nfigures\n")
    assert "| 3 | 6 (2 multi-volume, 2 returned in WMS first)" in text
    assert ROW.format(seed=1, pairs=60, t=10.0) in text
    assert text.endswith("## What the WMS matrix costs CI\n\nhand-written table\n")
