"""The scale simulator (scripts/simulate_datasets.py): archives in each dataset's real
format at a fraction of its size, read by the real prepare code path."""

from __future__ import annotations

import csv
import json
import sys
import warnings

import numpy as np
import pytest

from dscl.datasets import get_dataset
from tests.conftest import REPO

sys.path.insert(0, str(REPO / "scripts"))
import simulate_datasets as sim


def _prepared(root, name):
    out = root / "prepared" / name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the counts are not the published ones: said, and continued
        get_dataset(name).run(out, root / "raw", verify_checksum=False)
    meta = json.loads((out / "meta.json").read_text())
    tables = {s: list(csv.DictReader((out / f"{s}.csv").open())) for s in ("train", "test")}
    return meta, tables


@pytest.mark.parametrize(("name", "fraction"), [("cub200", 0.05), ("cars196", 0.05), ("sop", 0.005)])
def test_the_real_prepare_reads_the_simulated_archive(tmp_path, name, fraction):
    n = sim.simulate(name, tmp_path / "raw", fraction=fraction, size=16)
    meta, tables = _prepared(tmp_path, name)
    shape = sim.SHAPES[name]
    classes, images = sim.simulated_size(name, fraction)
    assert meta["train_images"] + meta["test_images"] == n == images
    assert meta["train_classes"] + meta["test_classes"] == classes
    assert meta["train_classes"] > 0 and meta["test_classes"] > 0  # both sides of the class split
    labels = [int(r["label"]) for s in ("train", "test") for r in tables[s]]
    sizes = np.bincount(labels)[np.unique(labels)]
    assert sizes.min() >= shape.low and sizes.max() <= shape.high
    assert not {r["label"] for r in tables["train"]} & {r["label"] for r in tables["test"]}


def test_class_sizes_add_up_within_the_range_and_repeat():
    rng = np.random.default_rng(3)
    sizes = sim.class_sizes(11_316, 60_502, 2, 12, rng)
    assert sizes.sum() == 60_502 and sizes.min() >= 2 and sizes.max() <= 12
    assert np.array_equal(sizes, sim.class_sizes(11_316, 60_502, 2, 12, np.random.default_rng(3)))
    assert len(np.unique(sizes)) > 5  # SOP's classes are of many sizes, not one
    with pytest.raises(ValueError, match="cannot be"):
        sim.class_sizes(10, 200, 2, 12, rng)


def test_the_full_sizes_are_the_published_ones():
    for name, (classes, images) in {
        "cub200": (200, 11_788),
        "cars196": (196, 16_185),
        "sop": (22_634, 120_053),
    }.items():
        assert sim.scaled(sim.SHAPES[name], 1.0) == sim.simulated_size(name, 1.0) == (classes, images)


def test_an_image_is_its_class_pattern_varied(tmp_path):
    """Images of one class are nearer each other than images of another, but not copies."""
    painter = sim.Painter(16, seed=0)
    from io import BytesIO

    from PIL import Image

    def pixels(label, index):
        return np.asarray(Image.open(BytesIO(painter.jpeg(label, index))), dtype=float)

    same = np.abs(pixels(1, 0) - pixels(1, 1)).mean()
    other = np.abs(pixels(1, 0) - pixels(2, 0)).mean()
    assert 0 < same < other
    assert painter.jpeg(1, 0) == sim.Painter(16, seed=0).jpeg(1, 0)  # the same bytes again


def test_bad_arguments_are_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        sim.main(["sop", "--fraction", "0", "--root", str(tmp_path)])
    assert "--fraction must be in (0, 1]" in capsys.readouterr().err
    assert not (tmp_path / "sop").exists()
