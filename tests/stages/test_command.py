"""The ``dscl`` command, run as a user runs it (a subprocess), on digits models made by
the stages and on a folder of photographs with a pretrained backbone."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tomllib
import torch
from PIL import Image

from dscl.datasets import read_split
from dscl.inference import TrainedModel, search
from dscl.training.fit import MODEL_FORMAT
from stages import embed, train
from tests.archives import make_image_folder
from tests.conftest import REPO
from tests.stages.test_stages import run_until_features, train_args

pytestmark = pytest.mark.slow


def dscl(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dscl.command", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """A digits workspace with a trained last-layer model and its test embedding."""
    root = tmp_path_factory.mktemp("digits")
    import os

    import yaml

    from tests.conftest import small_params

    old = os.getcwd()
    os.chdir(root)
    try:
        (root / "params.yaml").write_text(yaml.safe_dump(small_params()))
        run_until_features(root)
        train.main(train_args("dscl_last"))
        embed.main(
            [
                "--dataset",
                "digits",
                "--model",
                "models/digits-dscl_last",
                "--prepared",
                "data/prepared/digits",
                "--features",
                "data/features/digits",
                "--out",
                "data/embeddings/digits/dscl_last",
            ]
        )
    finally:
        os.chdir(old)
    return root


def test_the_entry_point_is_declared():
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["dscl"] == "dscl.command:main"
    assert dscl("--help").returncode == 0
    for command in ("info", "embed", "search", "cluster"):
        out = dscl(command, "--help")
        assert out.returncode == 0 and "example:" in out.stdout


def test_embed_gives_the_pipelines_test_embedding(digits):
    model = digits / "models/digits-dscl_last/model.pt"
    info = dscl("info", model)
    assert info.returncode == 0 and "dscl_last" in info.stdout and "embedding_dim      3" in info.stdout
    split = read_split(digits / "data/prepared/digits", "test")
    csv_file = digits / "test.csv"
    csv_file.write_text("path\n" + "".join(f"{split.image_path(i)}\n" for i in range(len(split))))
    out = dscl("embed", model, csv_file, "-o", digits / "emb.npy")
    assert out.returncode == 0, out.stderr
    emb = np.load(digits / "emb.npy")
    expected = np.load(digits / "data/embeddings/digits/dscl_last/test.npy")
    np.testing.assert_allclose(emb, expected, rtol=1e-5, atol=1e-6)
    listed = (digits / "emb.paths.txt").read_text().split()
    assert listed == [str(split.image_path(i)) for i in range(len(split))]


def test_search_equals_a_brute_force_search(digits):
    model = digits / "models/digits-dscl_last/model.pt"
    gallery = digits / "data/prepared/digits/images/6"
    queries = sorted((digits / "data/prepared/digits/images/5").glob("*.png"))[:3]
    out = dscl("search", model, "--gallery", gallery, "--query", *queries, "-k", 5, "--json")
    assert out.returncode == 0, out.stderr
    results = json.loads(out.stdout)
    loaded = TrainedModel.load(model)
    g = loaded.embed([gallery])
    paths = loaded.paths
    q = loaded.embed(queries)
    brute = np.sqrt(((q[:, None, :] - g[None, :, :]) ** 2).sum(-1))  # (3, n)
    for result, row in zip(results, brute):
        got = [n["distance"] for n in result["neighbours"]]
        np.testing.assert_allclose(got, np.sort(row)[:5], rtol=1e-4, atol=1e-5)
        assert result["neighbours"][0]["path"] == str(paths[int(np.argmin(row))])
    d, _ = search(g, q, 5)
    np.testing.assert_allclose(d, np.sort(brute, axis=1)[:, :5], rtol=1e-4, atol=1e-5)
    table = dscl("search", model, "--gallery", gallery, "--query", queries[0], "-k", 2)
    assert table.returncode == 0 and "rank   distance  path" in table.stdout


def test_bad_input_fails_in_one_line_and_writes_nothing(digits, tmp_path):
    model = digits / "models/digits-dscl_last/model.pt"
    empty = tmp_path / "empty"
    empty.mkdir()
    bad = tmp_path / "photos"
    bad.mkdir()
    Image.new("L", (8, 8)).save(bad / "ok.png")
    (bad / "broken.png").write_bytes(b"not an image")
    forged = tmp_path / "forged.pt"
    torch.save({"record": {"format": MODEL_FORMAT}, "state_dict": {}, "code": Path("x")}, forged)
    cases = [
        (("embed", model, empty, "-o", tmp_path / "a.npy"), "holds no image files"),
        (("embed", model, bad, "-o", tmp_path / "b.npy"), "broken.png is not a readable image"),
        (("embed", forged, bad, "-o", tmp_path / "c.npy"), "not a model file of this project"),
        (
            ("search", model, "--gallery", bad / "ok.png", "--query", bad / "ok.png", "-k", 3),
            "larger than the gallery",
        ),
        (("info", tmp_path / "missing.pt"), "does not exist"),
    ]
    for args, message in cases:
        out = dscl(*args)
        assert out.returncode == 2, (args, out.stderr)
        last = out.stderr.strip().splitlines()[-1]
        assert last.startswith(f"dscl {args[0]}: error:") and message in last, last
    assert not list(tmp_path.glob("*.npy"))
    ok = dscl("embed", model, bad, "-o", tmp_path / "d.npy", "--skip-bad")
    assert ok.returncode == 0 and "skipped" in ok.stderr and np.load(tmp_path / "d.npy").shape == (1, 3)


def test_photographs_with_a_pretrained_backbone(tmp_path):
    """A last-layer model over EfficientNet-Lite0 (its weights ship with the package):
    cluster a class-per-folder set of photographs, search it, draw the figure."""
    torch.manual_seed(0)
    head = torch.nn.Linear(1280, 4)
    record = {
        "format": MODEL_FORMAT,
        "method": "dscl_last",
        "dataset": "imagefolder",
        "learns": "last_layer",
        "backbone": "efficientnet_lite0",
        "backbone_weights": "imagenet",
        "resize": 72,
        "crop": 64,
        "feature_dim": 1280,
        "embedding_dim": 4,
        "normalized": False,
        "selected_step": 0,
    }
    model = tmp_path / "model.pt"
    torch.save({"record": record, "state_dict": head.state_dict()}, model)
    photos = tmp_path / "photos"
    make_image_folder(photos, {"heron": 3, "gull": 3, "wren": 2}, size=(40, 30))
    out = dscl("cluster", model, photos, "-k", 3, "-o", tmp_path / "clusters.csv")
    assert out.returncode == 0, out.stderr
    assert "NMI against the 3 folders:" in out.stdout
    rows = (tmp_path / "clusters.csv").read_text().splitlines()
    assert rows[0] == "path,cluster" and len(rows) == 9
    query = sorted((photos / "gull").iterdir())[0]
    figure = tmp_path / "hits.png"
    out = dscl("search", model, "--gallery", photos, "--query", query, "-k", 4, "--figure", figure)
    assert out.returncode == 0, out.stderr
    png = Image.open(figure)
    assert png.format == "PNG" and png.size == (120 + 5 * 84 + 6, 30 + 110 + 6)
