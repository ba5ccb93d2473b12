"""Every ``dscl`` example of the README, the docs and ``--help`` runs as shown, on the
models and images that the quick start's ``dvc repro`` leaves behind."""

from __future__ import annotations

import re
import shlex
import shutil

import pytest

from dscl.inference import command
from tests.archives import make_image_folder
from tests.conftest import REPO
from tests.stages.test_command import photo_model

pytestmark = pytest.mark.slow


def documented_examples() -> list[tuple[str, str]]:
    """(where, command line) for each ``dscl`` line of a bash block in the README and
    the docs, and each command's ``--help`` example."""
    found = []
    for path in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for block in re.findall(r"```(?:bash|text)\n(.*?)```", path.read_text(), flags=re.S):
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
    """On the quick start's digits models and images; the examples on photographs with a
    model of the testbed's kind (EfficientNet-Lite0 and a learned last layer, as
    ``models/cub200_mini-dscl_e2e/model.pt``, which only the testbed's run builds) and a
    folder of generated photographs."""
    root, _ = digits_run
    (tmp_path / "data").symlink_to(root / "data")  # the run's outputs, read only
    (tmp_path / "models").mkdir()
    for model in (root / "models").iterdir():
        (tmp_path / "models" / model.name).symlink_to(model)
    testbed = tmp_path / "models/cub200_mini-dscl_e2e"
    testbed.mkdir()
    photo_model(testbed).rename(testbed / "model.pt")
    make_image_folder(tmp_path / "photos", {f"bird{i}": 3 for i in range(26)}, size=(40, 30))
    shutil.copy(tmp_path / "photos/bird0/000.jpg", tmp_path / "bird.jpg")
    monkeypatch.chdir(tmp_path)
    for where, line in documented_examples():
        status = command.main(shlex.split(line)[1:])
        err = capsys.readouterr().err
        assert status == 0, f"{where}: {line}\n{err}"
    assert (tmp_path / "embeddings.npy").is_file() and (tmp_path / "embeddings.paths.txt").is_file()
    assert (tmp_path / "hits.png").is_file() and (tmp_path / "clusters.csv").is_file()
