"""Copy the committed result tables into the README and the docs after a run.

    python scripts/sync_tables.py

Each block between ``<!-- <name>-table:start -->`` and ``<!-- <name>-table:end -->``
takes the rows of ``reports/tables/<name>.md`` (of a dataset's table, its measured rows;
of ``<dataset>_comparison`` and ``<dataset>_ablation``, every row): a docs page all of
them, the README the rows it already shows (matched by their label).
``tests/pipeline/test_docs.py`` fails when a block and the report disagree.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"(<!-- (\w+)-table:start -->\n)(.*?)(<!-- \2-table:end -->)", re.S)


def table_rows(name: str) -> list[str]:
    """The rows a page shows of ``reports/tables/<name>.md``."""
    body = [ln for ln in (REPO / f"reports/tables/{name}.md").read_text().splitlines() if ln.startswith("| ")]
    body = body[1:]  # the header row (the rule starts with "|-")
    if any("| measured |" in ln for ln in body):  # a dataset's table: its measured rows
        return [ln.replace(" | measured |", " |") for ln in body if "| measured |" in ln]
    return body


def label_of(row: str, name: str) -> str:
    """A row's label: its cells before the figures (the method; for a comparison, the
    pair and the variant; for an ablation, the method, d and the variant)."""
    cells = row.split(" | ")
    return " | ".join(cells[: 3 if name.endswith(("_comparison", "_ablation")) else 1])


def sync(page: Path) -> bool:
    text = page.read_text()

    def replace(match: re.Match) -> str:
        start, dataset, body, end = match.group(1), match.group(2), match.group(3), match.group(4)
        lines = body.splitlines()
        head = [ln for ln in lines if ln.startswith("|")][:2]  # header and rule
        if not head:  # a new block: the report's own header, less its Source column
            report = (REPO / f"reports/tables/{dataset}.md").read_text().splitlines()
            head = [ln for ln in report if ln.startswith("|")][:2]
            if "| Source |" in head[0]:
                head = [head[0].replace(" Source |", ""), head[1][: -len("---|")]]
        rows = table_rows(dataset)
        if page.name == "README.md":
            shown = {label_of(ln, dataset) for ln in lines[2:] if ln.startswith("| ")}
            rows = [r for r in rows if label_of(r, dataset) in shown]
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
