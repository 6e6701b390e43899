"""Every table in docs/results.md is what its command prints today, from the study logs in results/.

A table is marked in the document by the command that prints it (the table may be one
contiguous part of a longer printout)::

    <!-- printed by: python -m search effects --storage journal:results/oat.log --study-name mnist-oat -->
    ```text
    ...
    ```

The logs are kept in the repository, so this recomputes each table without training anything
and fails when the document and the code disagree: no table goes stale.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = (REPO / "docs" / "results.md", REPO / "README.md")
MARK = re.compile(r"<!-- printed by: (?P<command>.+?) -->\n```text\n(?P<table>.*?)```", re.S)


def _tables() -> list[tuple[str, str, str]]:
    found = []
    for doc in DOCS:
        for match in MARK.finditer(doc.read_text()):
            found.append((doc.name, match["command"], match["table"]))
    return found


def test_the_results_document_marks_its_tables() -> None:
    assert any(doc == "results.md" for doc, _, _ in _tables())


@pytest.mark.parametrize(("doc", "command", "table"), _tables(), ids=lambda v: v if len(v) < 90 else None)
def test_a_documented_table_is_what_its_command_prints(doc: str, command: str, table: str) -> None:
    argv = shlex.split(command)
    assert argv[:3] == ["python", "-m", "search"], f"{doc}: only `python -m search` readers are recomputed"
    assert argv[3] in {"effects", "best", "list", "export"}, f"{doc}: {argv[3]} would train or serve"
    for arg in argv:
        if arg.startswith("journal:"):
            assert (REPO / arg.removeprefix("journal:")).is_file(), f"{doc}: {arg} is not in the repository"
    done = subprocess.run(
        [sys.executable, *argv[1:]], cwd=REPO, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr
    # A document may show one part of a long printout: that part, line for line, in one piece.
    assert table.rstrip("\n") in done.stdout, f"{doc}: the table under `{command}` is stale"


def test_the_readmes_answers_are_the_documented_tables_figures() -> None:
    """The README's "What it finds" quotes the tables by hand: every change and interval in its
    tables' rows appears in a table of docs/results.md, which the test above recomputes from the logs."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("## What it finds", 1)[1].split("\n## ", 1)[0]
    tables = "".join(table for doc, _, table in _tables() if doc == "results.md")
    rows = "\n".join(line for line in section.splitlines() if line.startswith("|"))
    quoted = re.findall(r"[+-]\d\.\d{4} \[[+-]\d\.\d{4}, [+-]\d\.\d{4}\]", rows)
    assert quoted, "the README's answers give no interval"
    for figure in quoted:
        change, interval = figure.split(" ", 1)
        assert re.search(rf"{re.escape(change)}\s+{re.escape(interval)}", tables), f"README: {figure} is in no table"
