"""The shape of the code: thin stages that import the configuration and the library,
never each other, and start without torch where they never touch a tensor."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from tests.conftest import REPO

STAGES = sorted(p for p in (REPO / "stages").glob("*.py") if p.stem not in ("__init__", "cli", "launch"))


@pytest.mark.parametrize("path", STAGES, ids=lambda p: p.stem)
def test_a_stage_is_thin_and_imports_no_other_stage(path):
    tree = ast.parse(path.read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {
        f"{node.module}.{alias.name}" if node.module == "stages" else node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
        for alias in node.names
    }
    assert {m for m in imported if m.startswith("stages")} <= {"stages.cli"}, imported
    assert len(path.read_text().splitlines()) <= 120


@pytest.mark.parametrize("module", ["stages.prepare", "stages.curves", "dscl.config"])
def test_stages_that_touch_no_tensor_start_without_torch(module):
    code = (
        f"import sys, {module}; print(sorted(m for m in ('torch', 'sklearn', 'faiss') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
