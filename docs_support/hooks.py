"""MkDocs hooks: the figures the pages show are the committed ones in ``reports/`` (never
copies that could drift), served under the same relative path (``reports/...``); and the
pages' equations typeset as MathML when the site is built."""

from __future__ import annotations

import re
from html import unescape
from pathlib import Path

from latex2mathml.converter import convert
from mkdocs.structure.files import File

REPO = Path(__file__).resolve().parents[1]


def on_files(files, config):
    for png in sorted((REPO / "reports").rglob("*.png")):
        uri = png.relative_to(REPO).as_posix()
        files.append(File.generated(config, uri, abs_src_path=str(png)))
    return files


# The pages' equations ($...$ and $$...$$, marked by pymdownx.arithmatex in its generic
# mode) become MathML when the site is built: browsers typeset MathML themselves, so the
# site loads no JavaScript and no CDN for them. latex2mathml rather than MathJax or
# KaTeX: those are JavaScript, served from a CDN or vendored into the repository.
MATH = re.compile(
    r'<(?P<tag>span|div) class="arithmatex">\s*\\(?P<open>[(\[])(?P<tex>.*?)\\[)\]]\s*</(?P=tag)>', re.S
)


def on_page_content(html, page, config, files):
    def typeset(match: re.Match) -> str:
        display = "block" if match["open"] == "[" else "inline"
        return convert(unescape(match["tex"]).strip(), display=display)

    return MATH.sub(typeset, html)
