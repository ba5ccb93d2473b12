"""Griffe extension: the docstrings' Sphinx markup as mkdocstrings renders it.

The library's docstrings use the numpy style with Sphinx roles (``:func:`dscl_loss```,
``:mod:`dscl.evaluation.bootstrap```) and citation blocks (``.. [1] Law, Urtasun, Zemel ...``), which
read well in ``help()`` and in an editor; mkdocstrings would print them as raw text. When
the API pages are built, a role becomes a cross-reference (a link to the object's entry)
where its name resolves to an object of the package (as written, or relative to the
docstring's module or object), and code otherwise; a citation becomes a numbered
reference.
"""

from __future__ import annotations

import re

import griffe

ROLE = re.compile(r":(?:py:)?(?:func|class|mod|meth|attr|data|exc|obj):`(~?)([\w.]+)`")
CITATION = re.compile(r"^(\s*)\.\. \[(\d+)\] ", re.M)


class SphinxRoles(griffe.Extension):
    """Rewrites every docstring of the package once it is loaded."""

    def on_package(self, *, pkg: griffe.Module, **kwargs) -> None:
        for obj in _walk(pkg):
            if obj.docstring is not None:
                obj.docstring.value = render(obj.docstring.value, obj, pkg)


def _walk(obj):
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from _walk(member)


def render(text: str, obj, pkg) -> str:
    """``text`` with its roles as cross-references (or code) and its citations plain."""

    def role(m: re.Match) -> str:
        short, name = m.group(1) == "~", m.group(2)
        shown = name.split(".")[-1] if short else name
        for candidate in (name, f"{obj.module.path}.{name}", f"{obj.path}.{name}"):
            if _resolves(candidate, pkg):
                return f"[`{shown}`][{candidate}]"
        return f"`{shown}`"

    return _prose_types(_prose_returns(CITATION.sub(r"\1[\2] ", ROLE.sub(role, text))))


# A numpy section: its title, a line of dashes, and its lines up to the next title.
SECTION = re.compile(r"^(Returns|Yields)\n-+\n(.*?)(?=\n\n\S[^\n]*\n-{3,}\n|\Z)", re.M | re.S)


def _prose_returns(text: str) -> str:
    """A Returns section written as prose (no indented description under a type) becomes
    a section of Markdown: the numpy parser would take its first line for a type and show
    it as raw code, backticks and links included."""

    def paragraph(m: re.Match) -> str:
        body = m.group(2).rstrip()
        if any(line[:1].isspace() for line in body.splitlines()[1:] if line.strip()):
            return m.group(0)  # "type" then an indented description: the numpy form
        title = "What it returns" if m.group(1) == "Returns" else "What it yields"
        return f"{title}\n{'-' * len(title)}\n{body}"  # an unknown title: an admonition, Markdown

    return SECTION.sub(paragraph, text)


def _resolves(path: str, pkg) -> bool:
    parts = path.split(".")
    if parts[0] != pkg.name:
        return False
    target = pkg
    for part in parts[1:]:
        if part not in target.members:
            return False
        target = target.members[part]
        if target.is_alias:  # an import: linked where it points inside the package
            try:
                target = target.final_target
            except griffe.AliasResolutionError:
                return False
    # mkdocstrings renders what has a docstring (and a public name): a link to anything
    # else would have no target on the page
    return target.is_module or (bool(target.docstring) and not parts[-1].startswith("_"))


# "name : words with ``code`` or a link" in a parameter list: prose where numpy puts a type
PROSE_TYPE = re.compile(r"^(\*{0,2}\w[\w, *]*) : (.*(?:``|\]\[).*)$", re.M)


def _prose_types(text: str) -> str:
    """A parameter whose "type" is prose (it holds code or a link) gets it as the first
    line of its description, where it is rendered as Markdown rather than raw code."""
    return PROSE_TYPE.sub(r"\1\n    \2", text)
