"""The README's figures are the committed results, not hand-typed numbers."""

from __future__ import annotations

import re

from tests.conftest import REPO


def test_readme_digits_table_matches_committed_report():
    readme = (REPO / "README.md").read_text()
    block = re.search(r"<!-- digits-table:start -->\n(.*?)<!-- digits-table:end -->", readme, re.S)
    assert block, "README lost its digits table markers"
    shown = [line for line in block.group(1).splitlines() if line.startswith("| ") and "---" not in line][1:]
    report = (REPO / "reports/tables/digits.md").read_text().splitlines()
    measured = [line.replace(" | measured |", " |") for line in report if "| measured |" in line]
    assert shown == measured
