"""The CI workflow a user copies: valid for GitHub (checked offline against its
published schema), every action pinned to a commit, and its steps the README's commands
and the same gate that .ci/run calls."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from tests.conftest import REPO

WORKFLOW = REPO / ".github/workflows/ci.yml"


def _readme_commands() -> list[str]:
    """The commands of the README's quick start: each line of its bash blocks."""
    blocks = re.findall(r"```bash\n(.*?)```", (REPO / "README.md").read_text(), flags=re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


@pytest.mark.skipif(shutil.which("check-jsonschema") is None, reason="check-jsonschema is not installed")
def test_the_workflow_is_valid_for_github():
    out = subprocess.run(
        ["check-jsonschema", "--builtin-schema", "vendor.github-workflows", str(WORKFLOW)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_action_is_pinned_to_a_commit():
    steps = [s for job in yaml.safe_load(WORKFLOW.read_text())["jobs"].values() for s in job["steps"]]
    used = [s["uses"] for s in steps if "uses" in s]
    assert used and all(re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", u) for u in used), used


def test_the_workflow_runs_the_readmes_commands_and_the_gate_of_ci_run():
    steps = [s for job in yaml.safe_load(WORKFLOW.read_text())["jobs"].values() for s in job["steps"]]
    run = "\n".join(s.get("run", "") for s in steps)
    install, repro = _readme_commands()[0].split(" && ")
    assert install in run and repro in run
    assert "python -m pytest -q" in _readme_commands() and "python -m pytest -q" in run
    gate = "scripts/check_metrics.py"
    assert gate in run and gate in (REPO / ".ci/run").read_text()
    assert "$GITHUB_STEP_SUMMARY" in run  # the gate's table is posted on the pull request


@pytest.mark.skipif(shutil.which("check-jsonschema") is None, reason="check-jsonschema is not installed")
def test_the_citation_file_is_valid_and_the_license_is_the_projects():
    out = subprocess.run(
        ["check-jsonschema", "--builtin-schema", "vendor.citation-file-format", str(REPO / "CITATION.cff")],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert (REPO / "LICENSE").read_text().startswith("MIT License")
    assert yaml.safe_load((REPO / "CITATION.cff").read_text())["license"] == "MIT"
