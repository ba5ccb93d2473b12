"""MkDocs hook: the figures the pages show are the committed ones in ``reports/`` (never
copies that could drift), served under the same relative path (``reports/...``)."""

from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File

REPO = Path(__file__).resolve().parents[1]


def on_files(files, config):
    for png in sorted((REPO / "reports").rglob("*.png")):
        uri = png.relative_to(REPO).as_posix()
        files.append(File.generated(config, uri, abs_src_path=str(png)))
    return files
