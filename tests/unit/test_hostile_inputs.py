"""Hostile and broken inputs, one table: params files, model files, image folders,
archives and their lists, the gate's inputs. Each case ends in one line naming what was
expected (or, where the input is merely odd, in the right result), runs no code from the
input, hangs nothing (an alarm stops a case after 20 s), writes nothing outside its
target and loses no previous output. The table on the docs' Reproducibility page lists
the same cases."""

from __future__ import annotations

import os
import signal
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dscl import config
from dscl.datasets import cub200, sop
from dscl.datasets.archive import DatasetError, extract
from dscl.datasets.common import check_images
from dscl.inference import command
from dscl.inference.embedding import ModelFileError, load_model
from dscl.inference.model import ImageError, TrainedModel, image_paths
from tests.archives import add_bytes, jpeg_bytes

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))
import check_metrics  # noqa: E402

RECORD = {
    "format": 2, "method": "dscl_last", "dataset": "digits", "learns": "last_layer", "backbone": "pixels",
    "backbone_weights": "none", "resize": 256, "crop": 227, "feature_dim": 64, "embedding_dim": 3,
    "selected_on": "validation", "trained_classes": 3, "objective": "dscl", "normalized": False,
    "validation_classes": 2, "iterations": 10, "selected_step": 10,
}  # fmt: skip


class Planted:
    """Pickled, it would create the file ``planted`` when loaded: nothing may load it."""

    def __reduce__(self):
        return (os.system, ("touch planted",))


def model_file(path: Path, record=None, state=None) -> Path:
    weights = {"weight": torch.zeros(3, 64), "bias": torch.zeros(3)} if state is None else state
    torch.save({"record": {**RECORD, **(record or {})}, "state_dict": weights}, path)
    return path


def grey_images(folder: Path, n: int = 3) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(folder / f"{i}.png")


# -- params.yaml ---------------------------------------------------------------------------
def params_text(tmp: Path, text: str) -> str:
    (tmp / "params.yaml").write_text(text)
    with pytest.raises(config.ParamsError) as err:
        config.load(tmp / "params.yaml")
    assert not (tmp / "planted").exists()
    return str(err.value)


def laughs(levels: int = 9) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]")
    return "\n".join(lines) + "\n"


def case_params_tag(tmp):
    return params_text(tmp, 'datasets: !!python/object/apply:os.system ["touch planted"]\n')


def case_params_alias_bomb(tmp):
    return params_text(tmp, laughs())


def case_params_recursive_alias(tmp):
    return params_text(tmp, "datasets: &a [*a]\n")


def case_params_huge(tmp):
    return params_text(tmp, "# " + "x" * (2 << 20) + "\n")


def case_params_not_utf8(tmp):
    (tmp / "params.yaml").write_bytes(b"datasets: [\xff]\n")
    with pytest.raises(config.ParamsError) as err:
        config.load(tmp / "params.yaml")
    return str(err.value)


def case_params_number_as_string(tmp):
    text = (REPO / "params.yaml").read_text().replace("lr: 0.001,", "lr: '1e30',", 1)
    return params_text(tmp, text)


# -- model files ---------------------------------------------------------------------------
def refused_model(path: Path) -> str:
    with pytest.raises(ModelFileError) as err:
        TrainedModel.load(path)
    assert not (path.parent / "planted").exists()
    return str(err.value)


def case_model_pickle(tmp):
    torch.save({"record": Planted(), "state_dict": {}}, tmp / "model.pt")
    cwd = os.getcwd()
    os.chdir(tmp)  # where the payload would write
    try:
        return refused_model(tmp / "model.pt")
    finally:
        os.chdir(cwd)


def case_model_zip_bomb(tmp):
    path = tmp / "model.pt"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("archive/data.pkl", b"\0" * (64 << 20))  # 64 MiB in about 64 KB
    return refused_model(path)


def case_model_random_bytes(tmp):
    (tmp / "model.pt").write_bytes(os.urandom(4096))
    return refused_model(tmp / "model.pt")


def case_model_truncated(tmp):
    data = model_file(tmp / "whole.pt").read_bytes()
    (tmp / "model.pt").write_bytes(data[: len(data) // 2])
    return refused_model(tmp / "model.pt")


def case_model_absurd_dimension(tmp):
    return refused_model(model_file(tmp / "model.pt", {"embedding_dim": 10**12}))


def case_model_absurd_layer(tmp):
    return refused_model(model_file(tmp / "model.pt", {"feature_dim": 1 << 20, "embedding_dim": 1 << 12}))


def case_model_wrong_shapes(tmp):
    state = {"weight": torch.zeros(5, 64), "bias": torch.zeros(5)}
    return refused_model(model_file(tmp / "model.pt", state=state))


def case_model_info_bomb(tmp):  # `dscl info` reads only the record, and refuses the same file
    path = tmp / "model.pt"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("archive/data.pkl", b"\0" * (64 << 20))
    with pytest.raises(ModelFileError) as err:
        load_model(path)
    return str(err.value)


# -- image folders -------------------------------------------------------------------------
def case_images_self_link(tmp):
    grey_images(tmp / "photos")
    (tmp / "photos/self").symlink_to(".")
    found = image_paths([tmp / "photos"])
    assert len(found) == 3, found
    return "ok: each image once"


def case_images_link_loop(tmp):
    grey_images(tmp / "photos/a")
    grey_images(tmp / "photos/b")
    (tmp / "photos/a/up").symlink_to("../b")
    (tmp / "photos/b/up").symlink_to("../a")
    found = image_paths([tmp / "photos"])
    assert len(found) == 6, found
    return "ok: each image once"


def case_images_fifo(tmp):
    grey_images(tmp / "photos")
    os.mkfifo(tmp / "photos/x.jpg")
    assert len(image_paths([tmp / "photos"])) == 3  # left out of a folder
    with pytest.raises(ImageError) as err:  # named alone: refused, never opened
        image_paths([tmp / "photos/x.jpg"])
    return str(err.value)


def case_images_not_utf8_name(tmp):
    grey_images(tmp / "photos")
    os.close(os.open(os.fsencode(tmp / "photos") + b"/\xff.png", os.O_CREAT | os.O_WRONLY))
    with pytest.raises(ImageError) as err:
        image_paths([tmp / "photos"])
    return str(err.value)


def case_images_line_break_in_name(tmp):
    grey_images(tmp / "photos")
    (tmp / "photos/a\nb.png").write_bytes((tmp / "photos/0.png").read_bytes())
    with pytest.raises(ImageError) as err:
        image_paths([tmp / "photos"])
    return str(err.value)


def case_images_embed_keeps_old_output(tmp):
    """A refused name: ``dscl embed`` fails before writing; the old pair stays whole."""
    model = model_file(tmp / "model.pt")
    grey_images(tmp / "photos")
    out = tmp / "emb.npy"
    assert command.main(["-q", "embed", str(model), str(tmp / "photos"), "-o", str(out)]) == 0
    before = out.read_bytes(), out.with_suffix(".paths.txt").read_bytes()
    with open(os.fsencode(tmp / "photos") + b"/\xff.png", "wb") as fh:  # a readable image, an odd name
        fh.write((tmp / "photos/0.png").read_bytes())
    assert command.main(["-q", "embed", str(model), str(tmp / "photos"), "-o", str(out)]) == 2
    assert (out.read_bytes(), out.with_suffix(".paths.txt").read_bytes()) == before
    assert sorted(p.name for p in tmp.iterdir()) == ["emb.npy", "emb.paths.txt", "model.pt", "photos"]
    return "ok: refused, the old embeddings and their order kept"


def case_images_decompression_bomb(tmp):
    Image.new("1", (20000, 20000)).save(tmp / "bomb.png")  # 400 Mpixels in a few KB
    with pytest.raises(DatasetError) as err:
        check_images(tmp, ["bomb.png"], num_workers=1)
    return str(err.value).splitlines()[1]


# -- archives and their lists ----------------------------------------------------------------
def refused_archive(archive: Path, out: Path) -> str:
    with pytest.raises(DatasetError) as err:
        extract(archive, out)
    assert not out.exists() and not list(archive.parent.glob("*.partial"))
    return str(err.value)


def case_archive_hard_link_to_nothing(tmp):
    with tarfile.open(tmp / "a.tgz", "w:gz") as tf:
        add_bytes(tf, "d/ok.jpg", jpeg_bytes(0))
        link = tarfile.TarInfo("d/link.jpg")
        link.type, link.linkname = tarfile.LNKTYPE, "d/missing.jpg"
        tf.addfile(link)
    return refused_archive(tmp / "a.tgz", tmp / "out")


def case_archive_member_outside(tmp):
    with tarfile.open(tmp / "a.tgz", "w:gz") as tf:
        add_bytes(tf, "../evil.jpg", jpeg_bytes(0))
    return refused_archive(tmp / "a.tgz", tmp / "out")


def case_archive_link_outside(tmp):
    with tarfile.open(tmp / "a.tgz", "w:gz") as tf:
        link = tarfile.TarInfo("d/passwd")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(link)
    return refused_archive(tmp / "a.tgz", tmp / "out")


def sop_list(tmp: Path, rows: list[str]) -> str:
    path = tmp / "Ebay_test.txt"
    path.write_text("\n".join(["image_id class_id super_class_id path", *rows]) + "\n")
    with pytest.raises(DatasetError) as err:
        sop.parse_list(path)
    return str(err.value)


def case_list_sop_row_of_three(tmp):
    return sop_list(tmp, ["1 2 1 bicycle_final/a.JPG", "2 2 bicycle_final/b.JPG"])


def case_list_sop_class_not_a_number(tmp):
    return sop_list(tmp, ["1 two 1 bicycle_final/a.JPG"])


def case_list_cub_line_of_one_token(tmp):
    (tmp / "images.txt").write_text("1 001.A/a.jpg\n2\n")
    (tmp / "image_class_labels.txt").write_text("1 1\n2 1\n")
    with pytest.raises(DatasetError) as err:
        cub200.parse(tmp)
    return str(err.value)


def case_list_not_utf8(tmp):
    (tmp / "images.txt").write_bytes(b"1 \xff.jpg\n")
    with pytest.raises(DatasetError) as err:
        cub200.parse(tmp)
    return str(err.value)


def case_list_path_outside(tmp):
    from dscl.datasets.common import finish

    (tmp / "images").mkdir()
    tables = {"train": [("a/x.jpg", 1)], "test": [("../../etc/passwd", 2)]}
    with pytest.raises(DatasetError) as err:
        finish("cub200", tmp / "prepared", tmp / "images", tables, {}, strict=False, meta={})
    assert not (tmp / "prepared").exists()
    return str(err.value)


# -- the gate's inputs ----------------------------------------------------------------------
def case_gate_metrics_path_is_a_folder(tmp):
    (tmp / "digits/vanilla.json").mkdir(parents=True)
    with pytest.raises(ValueError) as err:
        check_metrics.read_workspace(tmp)
    return str(err.value)


def case_gate_string_figure(tmp):
    baseline = {"digits/vanilla.json": {"with_sc": {"nmi": 28.8}}}
    current = {"digits/vanilla.json": {"with_sc": {"nmi": "28.8"}}}
    (row,) = check_metrics.compare(baseline, current, {"digits": {"vanilla": {"with_sc.nmi": 0.1}}})
    assert row.verdict == "FAIL"
    return row.reason


def case_gate_list_figure(tmp):
    baseline = {"digits/vanilla.json": {"with_sc": {"nmi": 28.8}}}
    current = {"digits/vanilla.json": {"with_sc": {"nmi": [28.8]}}}
    (row,) = check_metrics.compare(baseline, current, {"digits": {"vanilla": {"with_sc.nmi": 0.1}}})
    assert row.verdict == "FAIL"
    return row.reason


def case_gate_not_json(tmp):
    (tmp / "digits").mkdir()
    (tmp / "digits/vanilla.json").write_bytes(b"\xff\xfe not json")
    with pytest.raises(ValueError) as err:
        check_metrics.read_workspace(tmp)
    return str(err.value)


# case -> the words its one line must hold
CASES = {
    case_params_tag: "not valid YAML",
    case_params_alias_bomb: "aliases expand to",
    case_params_recursive_alias: "recursive value",
    case_params_huge: "a params file is at most",
    case_params_not_utf8: "not UTF-8",
    case_params_number_as_string: "train.",
    case_model_pickle: "carries objects other than tensors",
    case_model_zip_bomb: "compressed members",
    case_model_random_bytes: "not a PyTorch file",
    case_model_truncated: "damaged",
    case_model_absurd_dimension: "embedding_dim 1,000,000,000,000",
    case_model_absurd_layer: "describes a layer of",
    case_model_wrong_shapes: "tensors do not fit the network",
    case_model_info_bomb: "compressed members",
    case_images_self_link: "each image once",
    case_images_link_loop: "each image once",
    case_images_fifo: "not a regular file",
    case_images_not_utf8_name: "not valid UTF-8",
    case_images_line_break_in_name: "line break",
    case_images_embed_keeps_old_output: "old embeddings",
    case_images_decompression_bomb: "bomb.png",
    case_archive_hard_link_to_nothing: "hard link to 'd/missing.jpg'",
    case_archive_member_outside: "outside the target folder",
    case_archive_link_outside: "links outside the target folder",
    case_list_sop_row_of_three: "Ebay_test.txt, line 3: expected 4 fields",
    case_list_sop_class_not_a_number: "line 2: class_id must be an integer",
    case_list_cub_line_of_one_token: "images.txt, line 2: expected 2 fields",
    case_list_not_utf8: "images.txt: not UTF-8",
    case_list_path_outside: "lies outside the dataset's folder",
    case_gate_metrics_path_is_a_folder: "found a folder",
    case_gate_string_figure: "not a number now: '28.8'",
    case_gate_list_figure: "not a number now: [28.8]",
    case_gate_not_json: "vanilla.json",
}


def _stop(signum, frame):
    raise TimeoutError("the case hung")


@pytest.mark.parametrize("case", list(CASES), ids=[c.__name__[5:] for c in CASES])
def test_a_hostile_or_broken_input_ends_in_one_line(case, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # anything a case wrote by mistake lands in its own folder
    target = tmp_path / "target"
    target.mkdir()
    outside = sorted(tmp_path.iterdir())
    previous = signal.signal(signal.SIGALRM, _stop)
    signal.alarm(20)
    try:
        line = case(target)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert "\n" not in line and CASES[case] in line, line
    assert "Traceback" not in line
    assert sorted(tmp_path.iterdir()) == outside  # nothing written beside the target
    assert not any(p.name == "planted" for p in tmp_path.rglob("*"))


def test_the_valid_model_file_of_the_cases_loads(tmp_path):
    """The cases' reference model file is itself valid: each case breaks one thing."""
    model = TrainedModel.load(model_file(tmp_path / "model.pt"))
    assert model.record.embedding_dim == 3


def test_every_family_has_cases():
    families = {c.__name__.split("_")[1] for c in CASES}
    assert families == {"params", "model", "images", "archive", "list", "gate"}
