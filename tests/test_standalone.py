"""The repository stands alone: nothing it tracks reads a file outside its own tree.

A clean clone, with nothing beside it, must install and pass its tests. The Chinook scripts
the server fixtures load live in ``tests/data/chinook``; this guard catches a path that
climbs above the repository root or names a directory of one particular machine.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from conftest import CHINOOK_DIR, ROOT

THIS_FILE = Path(__file__).resolve().relative_to(ROOT).as_posix()
# Each pattern is spelled so that it does not match its own source line.
OUTSIDE_PATHS = {
    "a relative path into a sibling 'shared' folder": re.compile(r"\.\.[/\\]+shared\b"),
    "a pathlib join into a 'shared' folder": re.compile(r"""\bparent\s*/\s*["']shared["']"""),
    "the repository root's parent": re.compile(r"\bROOT\.parent\b"),
    "a path of the development machine": re.compile(r"(?<![\w.])/work/(?:shared|wt|main)\b"),
}
# Third-party code shipped as is; it is served to browsers and reads no local files.
VENDORED = ("dancecat_web/static/vendor/",)


def tracked_text_files() -> list[Path]:
    listing = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    return [
        ROOT / name
        for name in listing.split("\0")
        if name and name != THIS_FILE and not name.startswith(VENDORED)
    ]


def outside_references(text: str) -> list[str]:
    return [what for what, pattern in OUTSIDE_PATHS.items() if pattern.search(text)]


def test_no_tracked_file_reads_outside_the_repository() -> None:
    offenders = []
    for path in tracked_text_files():
        raw = path.read_bytes()
        if b"\0" in raw:
            continue
        for number, line in enumerate(raw.decode("utf-8", "replace").splitlines(), 1):
            for what in outside_references(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {what}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_the_guard_recognises_the_spellings_it_forbids() -> None:
    """Each pattern catches what it names, and ordinary uses of the word 'shared' pass."""
    # The samples are put together at run time, so this file never spells a forbidden path.
    up, work, quote = "..", "/" + "work", '"'
    caught = [
        f"CHINOOK = ROOT.parent / {quote}shared{quote} / {quote}datasets{quote}",
        f"cat {up}/shared/datasets/chinook/Chinook_MySql.sql",
        f"open('{up}\\\\shared\\\\x.sql')",
        "Path(__file__).parent.parent" + " / 'shared'",
        f"python {work}/shared/tools/import_cycles.py",
        f"cd {work}/main && make",
    ]
    passed = [
        'sa.Column("shared", sa.Boolean(), nullable=False)',
        "add.add_argument('--shared', action='store_true')",
        "ROOT = Path(__file__).resolve().parent.parent",
        "noise of this shared 2-core machine",
        "RESULT_DIR = /srv/work/results",
    ]
    assert all(outside_references(line) for line in caught)
    assert not any(outside_references(line) for line in passed)


def test_the_bundled_chinook_scripts_and_their_licence_are_tracked() -> None:
    tracked = {path.relative_to(ROOT).as_posix() for path in tracked_text_files()}
    folder = CHINOOK_DIR.relative_to(ROOT).as_posix()
    for name in ("Chinook_PostgreSql.sql.gz", "Chinook_MySql.sql.gz", "LICENSE.md"):
        assert f"{folder}/{name}" in tracked
    licence = (CHINOOK_DIR / "LICENSE.md").read_text(encoding="utf-8")
    assert "Permission is hereby granted, free of charge" in licence
