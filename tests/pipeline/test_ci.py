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
WORKFLOWS = sorted((REPO / ".github/workflows").glob("*.yml"))


def _readme_commands() -> list[str]:
    """The commands of the README's quick start: each line of its bash blocks."""
    blocks = re.findall(r"```bash\n(.*?)```", (REPO / "README.md").read_text(), flags=re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


@pytest.mark.skipif(shutil.which("check-jsonschema") is None, reason="check-jsonschema is not installed")
def test_the_workflows_are_valid_for_github():
    assert [w.name for w in WORKFLOWS] == ["ci.yml", "docs.yml"]
    out = subprocess.run(
        ["check-jsonschema", "--builtin-schema", "vendor.github-workflows", *map(str, WORKFLOWS)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def _steps(workflow):
    return [s for job in yaml.safe_load(workflow.read_text())["jobs"].values() for s in job["steps"]]


def test_every_action_is_pinned_to_a_commit():
    used = [s["uses"] for w in WORKFLOWS for s in _steps(w) if "uses" in s]
    assert used and all(re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", u) for u in used), used


def test_the_workflow_runs_the_readmes_commands_and_the_gate_of_ci_run():
    run = "\n".join(s.get("run", "") for s in _steps(WORKFLOW))
    ci_run = (REPO / ".ci/run").read_text()
    install, repro = _readme_commands()[0].split(" && ")
    assert install in run and repro in run
    assert "python -m pytest -q" in _readme_commands() and "python -m pytest -q" in run
    for command in (
        "pytest -q -m slow",
        "scripts/check_metrics.py",
        "scripts/check_wheel.sh",
        "scripts/touch_modules.py --check",
    ):
        assert command in run and command in ci_run, command
    assert '--report --summary "$GITHUB_STEP_SUMMARY"' in run  # the report is the job's summary
    workflow = yaml.safe_load(WORKFLOW.read_text())["jobs"]["pipeline"]
    assert workflow["strategy"]["matrix"]["python"] == ["3.11", "3.12"]
    assert workflow["env"]["TORCH_INDEX_URL"].endswith("/whl/cpu")  # no CUDA build for a CPU job
    cached = [s["with"]["path"] for s in workflow["steps"] if s.get("uses", "").startswith("actions/cache@")]
    assert cached == [".dvc/cache"]
    assert any(s.get("with", {}).get("cache") == "pip" for s in workflow["steps"])


def test_the_docs_are_published_from_a_strict_build():
    steps = _steps(REPO / ".github/workflows/docs.yml")
    build = "\n".join(s.get("run", "") for s in steps)
    assert "mkdocs build --strict" in build and " -q" not in build
    assert any(s.get("uses", "").startswith("actions/deploy-pages@") for s in steps)


def test_the_projects_addresses_agree():
    """The repository and site named by the package, the citation and the docs site."""
    import tomllib

    urls = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["urls"]
    cff = yaml.safe_load((REPO / "CITATION.cff").read_text())
    mkdocs = (REPO / "mkdocs.yml").read_text()
    assert urls["Repository"] == cff["repository-code"] and f'"{urls["Repository"]}"' in mkdocs
    assert urls["Documentation"] == cff["url"] and f'"{urls["Documentation"]}"' in mkdocs


@pytest.mark.skipif(shutil.which("check-jsonschema") is None, reason="check-jsonschema is not installed")
def test_the_citation_file_is_valid_and_the_license_is_the_projects():
    out = subprocess.run(
        ["check-jsonschema", "--builtin-schema", "vendor.citation-file-format", str(REPO / "CITATION.cff")],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert (REPO / "LICENSE").read_text().startswith("MIT License")
    cff = yaml.safe_load((REPO / "CITATION.cff").read_text())
    assert cff["license"] == "MIT"
    for key in ("repository-code", "url", "date-released"):  # a formatted citation needs its year
        assert cff.get(key), key
    paper = cff["preferred-citation"]
    assert (paper["start"], paper["end"], paper["year"]) == (1985, 1994, 2017)


def test_dvc_shows_figures_only_in_the_digits_metrics():
    """DVC's viewers list every value of a declared metrics file: the committed digits
    metrics (the evaluation's and the training summaries) hold numbers only, the
    environment they were computed in beside them."""
    import json

    files = sorted((REPO / "reports/metrics/digits").glob("*.json"))
    files += sorted((REPO / "reports/train").glob("digits-*/metrics.json"))
    assert len(files) >= 18

    def leaves(node):
        if isinstance(node, dict):
            for value in node.values():
                yield from leaves(value)
        elif isinstance(node, list):
            for value in node:
                yield from leaves(value)
        else:
            yield node

    for path in files:
        data = json.loads(path.read_text())
        assert "environment" not in data, path
        text = [v for v in leaves(data) if isinstance(v, str)]
        assert text in ([], ["validation"]), (path, text)  # selected_on: the split model selection read
