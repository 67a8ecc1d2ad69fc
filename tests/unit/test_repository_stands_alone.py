"""The repository stands on its own: no file names a folder of one machine, reaches for a sibling `shared`
folder, or sends the reader to a document that is not in the repository.

Checked over every file git knows (tracked, plus new files not ignored), so a clone on any machine is what is
checked. Each rule is also run against a planted offender, so the test can fail.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Folders of one machine: home and user folders, scratch and work folders, Windows drives. Lambda's own
# `/opt/python` (where layers are mounted) and URL paths such as `.../scim/v2/Users/.search` are not: a machine
# path starts a token (start of line, space, quote, bracket, `=`, `:`), never the middle of a URL path.
MACHINE_PATH = re.compile(
    r"""(?<![^\s"'`(\[{=:,])(?:/(?:work|home|root|Users|tmp|mnt|srv|private/var)/|~/|[A-Za-z]:\\\\?[A-Za-z])""",
    re.MULTILINE,
)
SHARED = re.compile(r"\.\./shared\b")
# The offenders the tests below plant, assembled so that this file names no outside path itself (a plain
# search of the repository for one stays clean).
PLANTED_WORK = "/" + "work/"
PLANTED_SHARED = ".." + "/shared"
PLANTED_XSD = PLANTED_WORK + "shared/ncip/ncip_v2_02.xsd"
# A section number of a document: the repository's documents are referred to by section name (an anchor).
SECTION_NUMBER = re.compile(r"\.md\s*§|§\s*\d")
MARKDOWN_LINK = re.compile(r"\[[^\]\n]*\]\(([^)\s]+)\)")
# A document named in prose or code: `docs/wms.md`, `reshare.md#events`, `../README.md`.
MENTION = re.compile(r"(?<![\w/.\-])((?:\.{1,2}/|[\w\-]+/)*[\w\-]+\.md)(#[\w\-]+)?(?![\w\-])")
TEXT_SUFFIXES = {
    ".py",
    ".md",
    ".toml",
    ".txt",
    ".yaml",
    ".yml",
    ".json",
    ".xml",
    ".xsd",
    ".cfg",
    ".ini",
    ".sh",
    ".gitignore",
}
TEXT_NAMES = {"Makefile", "run", ".gitignore"}
# Upstream files kept byte for byte (tests/reference/README.md): not ours to edit, and they name none of our
# documents. They are still checked for machine paths and the shared folder beside the checkout.
UPSTREAM = (
    "tests/reference/ncip/samples/",
    "tests/reference/reshare/samples/",
    "tests/reference/ncip/ncip_v2_02.xsd",
)
# This file plants offenders on purpose (below) to show that every rule fails on one.
SELF = Path(__file__).resolve().relative_to(ROOT).as_posix()


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.what}"


def repository_files(root: Path = ROOT) -> list[str]:
    """Every file git knows in the checkout (tracked, and new files that are not ignored)."""
    out = subprocess.run(
        ["git", "-C", str(root), "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        check=True,
        capture_output=True,
    ).stdout.decode()
    return sorted({p for p in out.split("\0") if p and (root / p).is_file()})


def is_text(path: str) -> bool:
    p = Path(path)
    return p.suffix in TEXT_SUFFIXES or p.name in TEXT_NAMES or path.startswith(".ci/")


def _line(text: str, index: int) -> int:
    return text.count("\n", 0, index) + 1


def machine_paths(path: str, text: str, root: Path = ROOT) -> list[Finding]:
    found = [
        Finding(path, _line(text, m.start()), f"machine path {m.group(0)!r}")
        for m in MACHINE_PATH.finditer(text)
    ]
    here = str(root)
    start = text.find(here)
    while start != -1:
        found.append(Finding(path, _line(text, start), f"this checkout's own location {here!r}"))
        start = text.find(here, start + 1)
    outside = "reference to the shared folder beside the checkout"
    found += [Finding(path, _line(text, m.start()), outside) for m in SHARED.finditer(text)]
    return found


@cache
def anchors(document: Path) -> frozenset[str]:
    """GitHub's anchors for a markdown file's headings (lower case, punctuation dropped, spaces to dashes)."""
    slugs = set()
    for line in document.read_text(encoding="utf-8").splitlines():
        heading = re.match(r"#{1,6}\s+(.*)", line)
        if heading:
            title = heading.group(1).strip().lower()
            slugs.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return frozenset(slugs)


def _resolve(source: Path, target: str, root: Path, *, link: bool) -> Path | None:
    """A document named from `source`. A markdown link, or a name starting with ./ or ../, is relative to the
    naming file only (as GitHub reads it); a plain mention may also be relative to the root or to docs/."""
    relative_only = link or target.startswith(("./", "../"))
    for base in (source.parent,) if relative_only else (source.parent, root, root / "docs"):
        candidate = (base / target).resolve()
        if candidate.is_file() and candidate.is_relative_to(root):
            return candidate
    return None


def broken_references(path: str, text: str, root: Path = ROOT) -> list[Finding]:
    source = root / path
    found = []
    targets: list[tuple[int, str, str, bool]] = []
    for m in MARKDOWN_LINK.finditer(text):
        target = m.group(1)
        if re.match(r"[a-z][a-z0-9+.\-]*:", target) or target.startswith("<"):
            continue  # a URL (http:, mailto:) is not a document of the repository
        file_part, _, anchor = target.partition("#")
        targets.append((m.start(), file_part, anchor, True))
    for m in MENTION.finditer(text):
        targets.append((m.start(), m.group(1), (m.group(2) or "#")[1:], False))
    for index, file_part, anchor, link in targets:
        document = source if not file_part else _resolve(source, file_part, root, link=link)
        if document is None:
            found.append(Finding(path, _line(text, index), f"{file_part!r} is not in the repository"))
        elif anchor and document.suffix == ".md" and anchor not in anchors(document):
            found.append(Finding(path, _line(text, index), f"{file_part or path}#{anchor}: no such section"))
    found += [
        Finding(path, _line(text, m.start()), "section number of a document (name the section instead)")
        for m in SECTION_NUMBER.finditer(text)
    ]
    return found


def check(path: str, root: Path = ROOT) -> list[Finding]:
    text = (root / path).read_text(encoding="utf-8", errors="replace")
    found = machine_paths(path, text, root)
    if not path.startswith(UPSTREAM):
        found += broken_references(path, text, root)
    return found


# --- the repository -------------------------------------------------------------------------------------


def test_the_checks_see_the_whole_repository():
    files = repository_files()
    assert (
        "template.yaml" in files and "docs/wms.md" in files and "layers/domain/illbridge/wms/ncip.py" in files
    )
    assert all(not f.startswith(".venv/") for f in files)
    assert sum(map(is_text, files)) > 150


def test_no_file_names_a_machine_folder_or_a_document_outside_the_repository():
    findings = [str(f) for path in repository_files() if is_text(path) and path != SELF for f in check(path)]
    assert findings == []


# --- each rule fails on a real offender -----------------------------------------------------------------


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "wms.md").write_text("# WMS\n\n## No callbacks\n\n## Transport and auth\n")
    (tmp_path / "README.md").write_text("# Project\n")
    return tmp_path


@pytest.mark.parametrize(
    "line",
    [
        f'XSD = "{PLANTED_XSD}"',
        "see /home/alice/notes.txt",
        "open('/root/data.json')",
        "SCRATCH = '/tmp/illbridge/out'",
        "cp ~/Downloads/sample.xml .",
        "(/Users/bob/src/samples)",
        'path = "C:\\\\Users\\\\bob\\\\samples"',
        r"dir C:\work\samples",
        f"samples: {PLANTED_SHARED}/ncip/samples",
    ],
)
def test_a_machine_path_is_found(repo: Path, line: str):
    assert machine_paths("x.py", f"a = 1\n{line}\n", repo), line


def test_the_checkouts_own_location_is_found(repo: Path):
    assert machine_paths("x.py", f"ROOT = '{repo}/tests'\n", repo)


@pytest.mark.parametrize(
    "line",
    [
        "Lambda mounts layers under /opt/python",
        'SEARCH = "/idaas/scim/v2/Users/.search"',
        'url = f"{base}/idaas/scim/v2/Users/{ppid}"',
        r'r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d"',
        "a temp directory from tempfile.mkdtemp()",
    ],
)
def test_what_is_not_a_machine_path(repo: Path, line: str):
    assert machine_paths("x.py", line, repo) == []


@pytest.mark.parametrize(
    "source, text",
    [
        ("x.py", '"""The poller (reshare.md §6)."""'),
        ("x.py", "# the seed's steps (product.md)"),
        ("x.py", "# see docs/style.md"),
        ("x.py", "# see docs/wms.md#lookup-item"),
        ("docs/a.md", "See [the runbook](operations.md)."),
        ("docs/a.md", "See [WMS](wms.md#no-such-section)."),
        ("docs/a.md", "See [the data](../tests/reference/README.md)."),
        ("README.md", "[ReShare](docs/reshare.md)"),
        ("docs/a.md", "(wms.md §4)"),
        ("docs/a.md", "See [WMS](docs/wms.md)."),
        ("tests/x/README.md", "as `../docs/wms.md` says"),
    ],
)
def test_a_reference_to_a_missing_document_or_section_is_found(repo: Path, source: str, text: str):
    assert broken_references(source, text, repo), text


@pytest.mark.parametrize(
    "source, text",
    [
        ("x.py", "# WMS has no callbacks (docs/wms.md#no-callbacks)"),
        ("x.py", "# see wms.md, Transport and auth"),
        (
            "docs/a.md",
            "[no callbacks](wms.md#no-callbacks), [home](../README.md), [web](https://example.org/x.md)",
        ),
        ("README.md", "[WMS](docs/wms.md#transport-and-auth)"),
    ],
)
def test_a_reference_inside_the_repository_passes(repo: Path, source: str, text: str):
    assert broken_references(source, text, repo) == []


def test_a_planted_offender_fails_the_repository_check(repo: Path):
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "app.py").write_text(f'"""Polls ReShare (reshare.md §6)."""\nXSD = "{PLANTED_XSD}"\n')
    findings = [str(f) for path in repository_files(repo) if is_text(path) for f in check(path, repo)]
    assert any("'reshare.md' is not in the repository" in f for f in findings)
    assert any(f"machine path {PLANTED_WORK!r}" in f for f in findings)
    assert any("section number" in f for f in findings)
