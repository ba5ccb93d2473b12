"""The README's figures are the committed results, not hand-typed numbers."""

from __future__ import annotations

import re

import pytest

from tests.conftest import REPO


@pytest.mark.parametrize("dataset", ["digits", "cub200_mini"])
def test_readme_tables_match_committed_reports(dataset):
    readme = (REPO / "README.md").read_text()
    block = re.search(rf"<!-- {dataset}-table:start -->\n(.*?)<!-- {dataset}-table:end -->", readme, re.S)
    assert block, f"README lost its {dataset} table markers"
    shown = [line for line in block.group(1).splitlines() if line.startswith("| ") and "---" not in line][1:]
    report = (REPO / f"reports/tables/{dataset}.md").read_text().splitlines()
    measured = [line.replace(" | measured |", " |") for line in report if "| measured |" in line]
    assert shown == measured
