"""The ``dscl`` command, run as a user runs it (a subprocess), on digits models made by
the stages and on a folder of photographs with a pretrained backbone."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dscl.datasets import read_split
from dscl.inference.model import TrainedModel, search
from dscl.training.fit import MODEL_FORMAT
from stages import embed, train
from tests.archives import make_image_folder
from tests.conftest import REPO
from tests.stages.test_stages import embed_args, run_until_features, train_args

pytestmark = pytest.mark.slow


def dscl(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dscl.inference.command", *map(str, args)],
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
        embed.main(embed_args("dscl_last"))
    finally:
        os.chdir(old)
    return root


def test_the_entry_point_is_declared():
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["dscl"] == "dscl.inference.command:main"
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
    assert out.stdout == "" and f"{len(split)} images -> " in out.stderr  # a log line, not a result
    quiet = dscl("-q", "embed", model, csv_file, "-o", digits / "emb.npy")
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr  # no log line, no progress bar
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
    files = loaded.embed_files([gallery])
    g, paths = files.embeddings, files.paths
    q = loaded.embed(queries)
    assert files.paths == paths and len(paths) == len(g)  # a query's embedding leaves them be
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
    noise = tmp_path / "noise.pt"
    noise.write_bytes(np.random.default_rng(0).bytes(5000))
    half = tmp_path / "half.pt"
    half.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    listed = tmp_path / "listed.pt"
    torch.save({"record": [1, 2], "state_dict": {}}, listed)
    lacking = tmp_path / "lacking.pt"
    record = torch.load(model, weights_only=True)
    torch.save(
        {"record": {k: v for k, v in record["record"].items() if k != "feature_dim"}, "state_dict": {}},
        lacking,
    )
    photo = tmp_path / "photo.jpg"
    Image.new("RGB", (64, 48), (200, 10, 10)).save(photo)
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_header(30_000, 30_000))
    dangling = tmp_path / "gone.csv"
    dangling.symlink_to(tmp_path / "nowhere.csv")
    cases = [
        (("embed", model, empty, "-o", tmp_path / "a.npy"), "holds no image files"),
        (("embed", model, bad, "-o", tmp_path / "b.npy"), "broken.png is not a readable image"),
        (("embed", forged, bad, "-o", tmp_path / "c.npy"), "carries objects other than tensors"),
        (("embed", noise, bad, "-o", tmp_path / "c.npy"), "not a PyTorch file"),
        (("embed", half, bad, "-o", tmp_path / "c.npy"), "damaged or truncated"),
        (("info", listed), "its record is a list, not a mapping"),
        (("info", lacking), "its record lacks ['feature_dim']"),
        (
            ("embed", model, photo, "-o", tmp_path / "c.npy"),
            "photo.jpg is 64 x 48; this model takes 8 x 8 grey",
        ),
        (("embed", model, bomb, "-o", tmp_path / "c.npy"), "bomb.png is too large to decode safely"),
        (("embed", model, dangling, "-o", tmp_path / "c.npy"), "gone.csv does not exist"),
        (("embed", model, bad, "-o", tmp_path), "is a folder: name a file"),
        (("embed", model, bad, "-o", tmp_path / "e"), "must end in .npy"),
        (("cluster", model, bad, "-k", 2, "-o", tmp_path / "missing/c.csv"), "does not exist"),
        (
            ("search", model, "--gallery", bad / "ok.png", "--query", bad / "ok.png", "-k", 3),
            "larger than the gallery",
        ),
        (
            ("search", model, "--gallery", bad / "ok.png", "--query", bad / "ok.png", "-k", 0),
            "-k must be at least 1",
        ),
        (("info", tmp_path / "missing.pt"), "does not exist"),
        (("info", tmp_path), "is a folder, not a model.pt"),
    ]
    for args, message in cases:
        out = dscl(*args)
        assert out.returncode == 2, (args, out.stderr)
        last = out.stderr.strip().splitlines()[-1]
        assert last.startswith(f"dscl {args[0]}: error:") and message in last, last
        assert "Traceback" not in out.stderr and "%|" not in last  # no progress bar before it
    assert not list(tmp_path.glob("*.npy"))
    (bad / "photo.jpg").write_bytes(photo.read_bytes())
    ok = dscl("embed", model, bad, "-o", tmp_path / "d.npy", "--skip-bad")
    assert ok.returncode == 0 and np.load(tmp_path / "d.npy").shape == (1, 3)
    assert ok.stderr.count("skipped") == 2  # the broken file and the photograph


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares width x height pixels and holds none (a decompression bomb's
    header: Pillow refuses it on opening)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def test_arrays_of_the_models_input_shape(digits):
    """Decoded images as documented: (n, h, w, c) or (n, c, h, w) of ``input_shape``; a
    digits model takes (n, 8, 8) too, and names the shape it takes otherwise."""
    loaded = TrainedModel.load(digits / "models/digits-dscl_last/model.pt")
    assert loaded.input_shape == (1, 8, 8)
    x = np.random.default_rng(0).integers(0, 256, (5, 8, 8), dtype=np.uint8)
    a = loaded.embed(x)
    np.testing.assert_array_equal(a, loaded.embed(x[..., None]))
    np.testing.assert_array_equal(a, loaded.embed(torch.from_numpy(x)[:, None]))
    with pytest.raises(
        ValueError, match=r"expected uint8 images \(n, 8, 8, 1\) or \(n, 1, 8, 8\) for this model"
    ):
        loaded.embed(np.zeros((2, 64, 64, 3), np.uint8))


def photo_model(tmp_path) -> Path:
    """A last-layer model over EfficientNet-Lite0 (its weights ship with the package)."""
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
    return model


def test_photographs_with_a_pretrained_backbone(tmp_path):
    """Cluster a class-per-folder set of photographs, search it, draw the figure."""
    model = photo_model(tmp_path)
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


def test_photographs_of_every_kind_people_have(tmp_path):
    """Any size; CMYK, RGBA, palette, 1-bit and 16-bit images; upper-case extensions: all
    embed. Broken ones (empty, truncated, a decompression bomb) are named, and skipped
    with --skip-bad."""
    model = photo_model(tmp_path)
    good = tmp_path / "good"
    good.mkdir()
    rng = np.random.default_rng(0)
    colour = Image.fromarray(rng.integers(0, 256, (300, 500, 3), dtype=np.uint8))
    colour.convert("CMYK").save(good / "cmyk.JPG")
    colour.convert("RGBA").save(good / "alpha.PNG")
    colour.convert("P").save(good / "palette.gif")
    colour.convert("1").save(good / "bits.png")
    Image.fromarray((rng.integers(0, 65536, (20, 31))).astype(np.uint16)).save(good / "deep.png")
    colour.resize((17, 3000)).save(good / "tall.jpeg")
    out = dscl("embed", model, good, "-o", tmp_path / "good.npy")
    assert out.returncode == 0, out.stderr
    emb = np.load(tmp_path / "good.npy")
    assert emb.shape == (6, 4) and np.isfinite(emb).all()
    assert len(set(map(tuple, emb.round(4)))) == 6  # six different images, six embeddings
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "empty.jpg").write_bytes(b"")
    (bad / "cut.JPG").write_bytes((good / "cmyk.JPG").read_bytes()[:200])
    (bad / "bomb.png").write_bytes(png_header(30_000, 30_000))
    for name in ("empty.jpg", "cut.JPG", "bomb.png"):
        out = dscl("embed", model, bad / name, "-o", tmp_path / "x.npy")
        assert out.returncode == 2 and name in out.stderr.strip().splitlines()[-1], out.stderr
    both = dscl("embed", model, good, bad, "-o", tmp_path / "both.npy", "--skip-bad")
    assert both.returncode == 0 and both.stderr.count("skipped") == 3, both.stderr
    np.testing.assert_allclose(np.load(tmp_path / "both.npy"), emb, rtol=1e-5, atol=1e-6)
