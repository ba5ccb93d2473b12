"""Every ``dscl`` example of the README, the docs and ``--help`` runs as shown, on the
models and images that the quick start's ``dvc repro`` leaves behind."""

from __future__ import annotations

import re
import shlex

import pytest

from dscl import command
from tests.conftest import REPO

pytestmark = pytest.mark.slow


def documented_examples() -> list[tuple[str, str]]:
    """(where, command line) for each ``dscl`` line of a bash block in the README and
    the docs, and each command's ``--help`` example."""
    found = []
    for path in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for block in re.findall(r"```bash\n(.*?)```", path.read_text(), flags=re.S):
            for line in block.splitlines():
                if line.startswith("dscl "):
                    found.append((path.name, line.split("  #")[0].strip()))
    found += [("--help", line) for line in command.EXAMPLES.values()]
    return found


def test_the_examples_are_found():
    where = {w for w, _ in documented_examples()}
    assert {"README.md", "using.md", "--help"} <= where
    assert {line.split()[1] for _, line in documented_examples()} == {"info", "embed", "search", "cluster"}


def test_each_documented_example_runs_as_shown(digits_run, tmp_path, monkeypatch, capsys):
    root, _ = digits_run
    for name in ("models", "data"):  # the run's outputs, read only; the examples write here
        (tmp_path / name).symlink_to(root / name)
    monkeypatch.chdir(tmp_path)
    for where, line in documented_examples():
        status = command.main(shlex.split(line)[1:])
        err = capsys.readouterr().err
        assert status == 0, f"{where}: {line}\n{err}"
    assert (tmp_path / "embeddings.npy").is_file() and (tmp_path / "embeddings.paths.txt").is_file()
    assert (tmp_path / "hits.png").is_file() and (tmp_path / "clusters.csv").is_file()
