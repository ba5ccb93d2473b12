"""MkDocs hooks: the figures the pages show are the committed ones in ``reports/`` (never
copies that could drift), served under the same relative path (``reports/...``); the
objectives' settings table written from their settings classes (the one source of their
defaults and ranges); and the pages' equations typeset as MathML when the site is built."""

from __future__ import annotations

import re
import typing
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


# "<!-- objective-settings -->" in a page: the table of every objective's loss settings,
# read from dscl.objectives.settings when the site is built (a default or a range changed
# there is what the page says)
SETTINGS_MARK = "<!-- objective-settings -->"
_BOUNDS = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}


def _allowed(info) -> tuple[str, str]:
    """A field's type and what it allows, in words."""
    choices = typing.get_args(info.annotation) if typing.get_origin(info.annotation) is typing.Literal else ()
    if choices:
        return "choice", ", ".join(f"`{c}`" for c in choices)
    kind = {bool: "true / false", float: "number", int: "integer", str: "string"}[info.annotation]
    limits = [(sign, getattr(m, k)) for m in info.metadata for k, sign in _BOUNDS.items() if hasattr(m, k)]
    bounds = [f"{sign} {value:g}" for sign, value in limits]
    return kind, ", ".join(bounds) or ("" if info.annotation is bool else "any")


def objective_settings_table() -> str:
    """The Markdown table of the objectives' settings: name, type, default, range."""
    from dscl.objectives import OBJECTIVES

    rows = ["| objective | setting | type | default | allowed |", "|---|---|---|---|---|"]
    for name, cls in OBJECTIVES.items():
        fields = cls.__pydantic_fields__
        if not fields:
            rows.append(f"| `{name}` | (none) | | | |")
        for key, info in fields.items():
            kind, allowed = _allowed(info)
            default = str(info.default).lower() if isinstance(info.default, bool) else info.default
            rows.append(f"| `{name}` | `{key}` | {kind} | `{default}` | {allowed} |")
    return "\n".join(rows)


def on_page_markdown(markdown, page, config, files):
    if SETTINGS_MARK in markdown:
        markdown = markdown.replace(SETTINGS_MARK, objective_settings_table())
    return markdown
