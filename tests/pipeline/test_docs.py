"""The README and the docs: their figures are the committed results (not hand-typed
numbers), their code snippets run, and the site builds without a warning."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import types

import pytest

from tests.conftest import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
TABLES = re.compile(r"<!-- (\w+)-table:start -->\n(.*?)<!-- \1-table:end -->", re.S)
SNIPPET = re.compile(r"```python\n(.*?)```", re.S)


def measured_rows(name: str) -> list[str]:
    """The rows a page may show of ``reports/tables/<name>.md``: a dataset table's
    measured rows, every row of a comparison or ablation table."""
    body = [
        ln for ln in (REPO / f"reports/tables/{name}.md").read_text().splitlines() if ln.startswith("| ")
    ][1:]
    if any("| measured |" in ln for ln in body):
        return [ln.replace(" | measured |", " |") for ln in body if "| measured |" in ln]
    return body


def test_every_shown_table_is_the_committed_report():
    """A table between ``<!-- <dataset>-table:start/end -->`` markers shows rows of
    ``reports/tables/<dataset>.md`` exactly, in the report's order (the README a few of
    them, the docs all of them)."""
    shown_any = set()
    for page in PAGES:
        for dataset, block in TABLES.findall(page.read_text()):
            rows = [ln for ln in block.splitlines() if ln.startswith("| ") and "---" not in ln][1:]
            report = measured_rows(dataset)
            assert rows and all(r in report for r in rows), (
                f"{page.name}: {dataset} table differs from the report"
            )
            assert [report.index(r) for r in rows] == sorted(report.index(r) for r in rows), page.name
            if page.parent.name == "docs":
                assert rows == report, f"{page.name} shows only part of {dataset}'s table"
            shown_any.add(dataset)
    assert {"digits", "cub200_mini", "cub200_mini_comparison"} <= shown_any


@pytest.mark.parametrize("page", [p for p in PAGES if SNIPPET.search(p.read_text())], ids=lambda p: p.name)
def test_python_snippets_run(page, tmp_path, monkeypatch):
    """Every Python snippet of the page runs offline, in a scratch folder, in order (a
    later snippet of a page may use the names of an earlier one)."""
    from dscl.objectives import OBJECTIVES

    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "__snippet__", types.ModuleType("__snippet__"))  # a module of its own
    monkeypatch.setattr(OBJECTIVES, "_entries", dict(OBJECTIVES._entries))  # what a page registers goes
    namespace = {"__name__": "__snippet__"}
    for i, code in enumerate(SNIPPET.findall(page.read_text())):
        exec(compile(code, f"{page.name} snippet {i + 1}", "exec"), namespace)


def test_the_readme_is_the_front_door():
    text = (REPO / "README.md").read_text()
    first_screen = "\n".join(text.splitlines()[:40])
    assert "pip install -r requirements.txt -e . && dvc repro" in first_screen
    assert "python -m pytest -q" in first_screen
    assert len(text.splitlines()) <= 200
    for link in re.findall(r"\]\((docs/[^)#]+)", text):  # links into the docs resolve
        assert (REPO / link).is_file(), link


@pytest.mark.slow  # 8 s: the whole site (CI's docs step)
@pytest.mark.skipif(shutil.which("mkdocs") is None, reason="mkdocs is not installed (requirements-dev.txt)")
def test_the_docs_site_builds_without_a_warning(tmp_path):
    res = subprocess.run(
        # no -q: it hides the warnings that --strict counts (a build with warnings then passes)
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"},
    )
    assert res.returncode == 0, res.stderr
    assert "WARNING" not in res.stderr, res.stderr
    api = (tmp_path / "site/api/objectives/index.html").read_text()
    assert "dscl_loss" in api and "Eq. (10)" in api  # generated from the docstrings
    # read as a reader would: the docstrings' Sphinx roles are links, their citations
    # plain references, and only pages and figures are published
    pages = {p: p.read_text() for p in (tmp_path / "site/api").rglob("*.html")}
    for page, html in pages.items():
        assert not re.search(r":(func|class|mod|meth|attr):`", html), f"{page}: a raw Sphinx role"
        assert not re.search(r"\.\. \[\d+\]", html), f"{page}: a raw citation block"
    for page in (tmp_path / "site").rglob("*.html"):  # what a reader sees, code blocks aside
        text = re.sub(r"<pre\b.*?</pre>", "", page.read_text(), flags=re.S)
        raw = re.search(r".{0,40}(\]\[dscl\.[\w.]*\]|``).{0,40}", text)
        assert raw is None, f"{page}: raw link or RST markup: {raw and raw.group(0)!r}"
    assert sum(html.count("autorefs-internal") for html in pages.values()) > 50  # cross-references
    assert not list((tmp_path / "site").rglob("*.py")), "a Python file published with the site"
    # the equations are typeset (MathML, at build time): none left as TeX for a script
    home = (tmp_path / "site/index.html").read_text()
    assert home.count('<math xmlns="http://www.w3.org/1998/Math/MathML" display="block">') >= 2
    for page in (tmp_path / "site").rglob("*.html"):
        assert 'class="arithmatex"' not in page.read_text(), f"{page}: an equation left untypeset"
    assert "stylesheets/extra.css" in home  # the tables' style
    # the objectives' settings table, written from their settings classes at build time
    baselines = (tmp_path / "site/baselines/index.html").read_text()
    assert "objective-settings" not in baselines
    assert re.search(r"<code>multisim</code></td>\s*<td><code>base</code></td>", baselines)
    assert "&gt;= -1, &lt;= 1" in baselines
