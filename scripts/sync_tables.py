"""Copy the committed result tables into the README and the docs after a run.

    python scripts/sync_tables.py

Each block between ``<!-- <dataset>-table:start -->`` and ``<!-- <dataset>-table:end -->``
takes the measured rows of ``reports/tables/<dataset>.md``: a docs page all of them, the
README the rows it already shows (matched by their label). ``tests/pipeline/test_docs.py``
fails when a block and the report disagree.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"(<!-- (\w+)-table:start -->\n)(.*?)(<!-- \2-table:end -->)", re.S)


def measured(dataset: str) -> list[str]:
    lines = (REPO / f"reports/tables/{dataset}.md").read_text().splitlines()
    return [line.replace(" | measured |", " |") for line in lines if "| measured |" in line]


def label(row: str) -> str:
    return row.split(" | ")[0]


def sync(page: Path) -> bool:
    text = page.read_text()

    def replace(match: re.Match) -> str:
        start, dataset, body, end = match.group(1), match.group(2), match.group(3), match.group(4)
        lines = body.splitlines()
        head = [ln for ln in lines if ln.startswith("|")][:2]  # header and rule
        rows = measured(dataset)
        if page.name == "README.md":
            shown = {label(ln) for ln in lines[2:] if ln.startswith("| ")}
            rows = [r for r in rows if label(r) in shown]
        return start + "\n".join(head + rows) + "\n" + end

    new = BLOCK.sub(replace, text)
    if new != text:
        page.write_text(new)
    return new != text


def main() -> None:
    for page in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        if sync(page):
            print(f"updated {page.relative_to(REPO)}")


if __name__ == "__main__":
    main()
