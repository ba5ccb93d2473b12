"""The real datasets' code on miniature archives in their real formats (no network:
downloads are served from a loopback HTTP server)."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import shutil
import tarfile
import urllib.request
import zipfile
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from dscl.datasets import archive as archive_module
from dscl.datasets import cars196, cub200, get_dataset, read_split, sop
from dscl.datasets.archive import (
    ArchiveError,
    ChecksumError,
    DatasetError,
    RemoteFile,
    extract,
    fetch,
)
from tests.archives import (
    CARS_CLASSES,
    RangeServer,
    add_bytes,
    make_cars_devkit,
    make_cars_mirror,
    make_cars_original,
    make_cub,
    make_sop,
)

DEAD = "http://127.0.0.1:1/nothing-listens-here"


@pytest.fixture(autouse=True)
def no_internet(monkeypatch):
    """Any URL but the loopback server's fails the test."""
    real = urllib.request.urlopen

    def guarded(request, *a, **k):
        url = request.full_url if hasattr(request, "full_url") else request
        assert url.startswith("http://127.0.0.1:"), f"test tried to reach {url}"
        return real(request, *a, **k)

    monkeypatch.setattr(urllib.request, "urlopen", guarded)


def rows(path: Path):
    return [(r["path"], int(r["label"])) for r in csv.DictReader(open(path))]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_registry_lists_the_paper_datasets():
    for name in ("cub200", "cars196", "sop", "digits"):
        assert get_dataset(name).name == name
    with pytest.raises(ValueError, match=r"unknown dataset 'cub'; valid names: \['cars196', 'cub200'"):
        get_dataset("cub")


# -- CUB-200-2011 -------------------------------------------------------------------------
def prepare_cub200(out, root, verify_checksum):
    cub200.prepare_cub(cub200.CUB200, out, root, verify_checksum)


def test_cub_manual_placement_and_class_split(tmp_path):
    root, out = tmp_path / "raw", tmp_path / "prepared/cub200"
    (root / "cub200").mkdir(parents=True)
    counts = make_cub(root / "cub200/CUB_200_2011.tgz")
    with pytest.warns(
        UserWarning, match="cub200: train images: found 9, the published split has 5,864; test images"
    ):
        prepare_cub200(out, root, verify_checksum=False)
    train, test = rows(out / "train.csv"), rows(out / "test.csv")
    assert {c for _, c in train} == {1, 2, 100} and {c for _, c in test} == {101, 150, 200}
    assert len(train) == 3 * counts[1] and len(test) == 9
    split = read_split(out, "test")
    assert all(split.image_path(i).is_file() for i in range(len(split)))
    assert split.paths[0] == "101.Bird_101/Bird_101_0.jpg"
    # idempotent: a second run reuses the extraction and writes the same tables
    before = (out / "train.csv").read_bytes()
    with pytest.warns(UserWarning):
        prepare_cub200(out, root, verify_checksum=False)
    assert (out / "train.csv").read_bytes() == before


def test_cub_verified_archive_checks_counts_strictly(tmp_path, monkeypatch):
    root = tmp_path / "raw"
    (root / "cub200").mkdir(parents=True)
    archive = root / "cub200/CUB_200_2011.tgz"
    make_cub(archive)
    variant = replace(cub200.CUB200, archive=RemoteFile("CUB_200_2011.tgz", (DEAD,), sha256=sha256(archive)))
    with pytest.raises(DatasetError, match="train images: found 9, the published split has 5,864"):
        cub200.prepare_cub(variant, tmp_path / "out", root, verify_checksum=True)
    assert not (tmp_path / "out").exists()


def test_wrong_checksum_is_refused_before_any_work(tmp_path):
    root = tmp_path / "raw"
    (root / "cub200").mkdir(parents=True)
    make_cub(root / "cub200/CUB_200_2011.tgz")
    with pytest.raises(ChecksumError, match="expected 1,150,585,339"):
        prepare_cub200(tmp_path / "out", root, verify_checksum=True)
    remote = RemoteFile("CUB_200_2011.tgz", (DEAD,), sha256="0" * 64)
    with pytest.raises(ChecksumError, match=f"sha256 .* does not match the published {'0' * 64}"):
        fetch(remote, root / "cub200", verify_checksum=True)
    assert not (root / "cub200/extracted").exists() and not (tmp_path / "out").exists()


def test_offline_without_archive_names_urls_and_place(tmp_path, monkeypatch):
    variant = replace(cub200.CUB200, archive=RemoteFile("CUB_200_2011.tgz", (DEAD, DEAD + "/2")))
    with pytest.raises(DatasetError) as err:
        cub200.prepare_cub(variant, tmp_path / "out", tmp_path / "raw", verify_checksum=True)
    message = str(err.value)
    assert DEAD in message and DEAD + "/2" in message
    assert str((tmp_path / "raw/cub200/CUB_200_2011.tgz").resolve()) in message
    assert not (tmp_path / "out").exists()


def test_download_tries_mirrors_in_order_verifies_and_resumes(tmp_path):
    src = tmp_path / "src.tgz"
    make_cub(src)
    data = src.read_bytes()
    remote_ok = RemoteFile("CUB_200_2011.tgz", (), sha256=sha256(src), size=len(data))
    with RangeServer({"good": data, "corrupt": data[:-10] + b"x" * 10}) as server:
        remote = RemoteFile(
            remote_ok.filename,
            (DEAD, server.url("corrupt"), server.url("good")),
            sha256=remote_ok.sha256,
            size=remote_ok.size,
        )
        folder = tmp_path / "dl"
        path = fetch(remote, folder, verify_checksum=True)
        assert path == folder / "CUB_200_2011.tgz" and path.read_bytes() == data
        assert not list(folder.glob("*.part"))
        # resume: half a file from an interrupted download is completed with a byte range
        path.unlink()
        (folder / "CUB_200_2011.tgz.part").write_bytes(data[: len(data) // 2])
        server.ranges.clear()
        remote = RemoteFile(remote_ok.filename, (server.url("good"),), sha256=remote_ok.sha256)
        assert fetch(remote, folder, verify_checksum=True).read_bytes() == data
        assert server.ranges == [f"bytes={len(data) // 2}-"]


def test_corrupt_download_never_looks_complete(tmp_path):
    src = tmp_path / "src.tgz"
    make_cub(src)
    with RangeServer({"corrupt": b"not an archive"}) as server:
        remote = RemoteFile("CUB_200_2011.tgz", (server.url("corrupt"),), sha256=sha256(src))
        with pytest.raises(DatasetError, match="does not match the published"):
            fetch(remote, tmp_path / "dl", verify_checksum=True)
    assert not (tmp_path / "dl/CUB_200_2011.tgz").exists()
    assert not (tmp_path / "dl/CUB_200_2011.tgz.part").exists()


def test_truncated_archive_leaves_nothing_behind(tmp_path):
    root = tmp_path / "raw"
    (root / "cub200").mkdir(parents=True)
    archive = root / "cub200/CUB_200_2011.tgz"
    make_cub(archive)
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(ArchiveError, match="corrupt or truncated"):
        prepare_cub200(tmp_path / "out", root, verify_checksum=False)
    assert sorted(p.name for p in (root / "cub200").iterdir()) == ["CUB_200_2011.tgz"]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kind", ["tar", "zip", "tar-link"])
def test_path_traversal_member_is_refused(tmp_path, kind):
    archive = tmp_path / ("evil.zip" if kind == "zip" else "evil.tgz")
    if kind == "zip":
        with zipfile.ZipFile(archive, "w") as zf:
            zf.writestr("ok.txt", "fine")
            zf.writestr("../evil.txt", "escaped")
    else:
        with tarfile.open(archive, "w:gz") as tf:
            add_bytes(tf, "ok.txt", b"fine")
            if kind == "tar":
                add_bytes(tf, "../evil.txt", b"escaped")
            else:
                link = tarfile.TarInfo("innocent")
                link.type = tarfile.SYMTYPE
                link.linkname = "../../evil.txt"
                tf.addfile(link)
    out = tmp_path / "deep/extracted"
    with pytest.raises(ArchiveError, match="outside the target folder"):
        extract(archive, out)
    assert not (tmp_path / "deep/evil.txt").exists() and not (tmp_path / "evil.txt").exists()
    assert not out.exists() and not (tmp_path / "deep/extracted.partial").exists()


def _tar(path: Path, members, mode: str = "w:gz") -> Path:
    """A .tgz of ``members``: (name, bytes) for a file, (name, TarInfo-editing function)."""
    with tarfile.open(path, mode) as tf:
        for name, what in members:
            if isinstance(what, bytes):
                add_bytes(tf, name, what)
            else:
                info = tarfile.TarInfo(name)
                what(info)
                tf.addfile(info)
    return path


def _dot_members(path: Path) -> Path:  # what `tar -C dir -czf x.tgz .` writes
    return _tar(path, [(".", lambda i: setattr(i, "type", tarfile.DIRTYPE)), ("./a/b.txt", b"fine")])


def _device(path: Path) -> Path:
    return _tar(path, [("ok.txt", b"fine"), ("dev", lambda i: setattr(i, "type", tarfile.CHRTYPE))])


def _huge(path: Path) -> Path:  # a header declaring 2 TiB, with no data behind it
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tf:
        info = tarfile.TarInfo("huge.bin")
        info.size = 2 << 40
        tf.addfile(info)  # header only: the data is never written
    path.write_bytes(gzip.compress(raw.getvalue()))
    return path


def _zip_traversal(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("../evil.txt", "escaped")
    return path


@pytest.mark.parametrize(
    "make, error, message",
    [
        (_dot_members, None, None),
        (lambda p: _tar(p, [("../evil.txt", b"x")]), ArchiveError, "outside the target folder"),
        (_zip_traversal, ArchiveError, "outside the target folder"),
        (
            lambda p: _tar(
                p,
                [
                    (
                        "l",
                        lambda i: (
                            setattr(i, "type", tarfile.SYMTYPE),
                            setattr(i, "linkname", "/etc/passwd"),
                        ),
                    )
                ],
            ),
            ArchiveError,
            "links outside the target folder",
        ),
        (
            lambda p: _tar(
                p, [("h", lambda i: (setattr(i, "type", tarfile.LNKTYPE), setattr(i, "linkname", "../x")))]
            ),
            ArchiveError,
            "links outside the target folder",
        ),
        (_device, ArchiveError, "is a character device|special file|device"),
        (lambda p: _tar(p, []), ArchiveError, "holds no files"),
        (lambda p: (p.write_bytes(b""), p)[1], ArchiveError, "corrupt or truncated"),
        (
            lambda p: (_dot_members(p), p.write_bytes(p.read_bytes()[:30]), p)[2],
            ArchiveError,
            "corrupt or truncated",
        ),
        (_huge, ArchiveError, "corrupt or truncated"),
        (
            lambda p: _tar(p, [("zeros.bin", bytes(1 << 20))]),
            ArchiveError,
            r"declares 1 members and 1,048,576 bytes",
        ),
    ],
    ids=[
        "dot-members",
        "traversal",
        "zip-traversal",
        "symlink",
        "hardlink",
        "device",
        "empty",
        "zero-bytes",
        "truncated",
        "huge-header",
        "over-the-bound",
    ],
)
def test_crafted_archives(tmp_path, monkeypatch, make, error, message):
    """Each crafted archive extracts, or is refused in one line with nothing left behind
    (the bound on the unpacked bytes lowered to 64 KiB for the test)."""
    monkeypatch.setattr(archive_module, "MAX_UNPACKED", 1 << 16)
    archive = make(tmp_path / "x.tgz")
    out = tmp_path / "deep/extracted"
    if error is None:
        assert (extract(archive, out) / "a/b.txt").read_bytes() == b"fine"
        return
    with pytest.raises(error, match=message):
        extract(archive, out)
    assert not out.exists() and not (tmp_path / "deep/extracted.partial").exists()
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "deep/evil.txt").exists()


def test_an_archive_larger_than_the_free_space_is_refused_before_unpacking(tmp_path, monkeypatch):
    archive = _tar(tmp_path / "x.tgz", [("a.txt", bytes(5000))])
    usage = shutil.disk_usage(tmp_path)._replace(free=10)
    monkeypatch.setattr(archive_module.shutil, "disk_usage", lambda p: usage)
    with pytest.raises(DatasetError, match=r"unpacks to 0.0 GB but .* has 0.0 GB free: free some space"):
        extract(archive, tmp_path / "extracted")
    assert not (tmp_path / "extracted").exists()


def test_an_extraction_is_reused_only_for_the_same_bytes(tmp_path):
    """The marker is keyed on the archive's content: a re-made archive of the same name
    and size (a mirror without a published checksum, re-downloaded) is extracted again."""
    archive = _tar(tmp_path / "x.tar", [("a.txt", b"one")], mode="w")
    out = extract(archive, tmp_path / "extracted")
    (out / "mine.txt").write_text("kept while the archive is the same")
    extract(archive, out)
    assert (out / "mine.txt").exists()
    size = archive.stat().st_size
    _tar(archive, [("a.txt", b"two")], mode="w")
    assert archive.stat().st_size == size
    extract(archive, out)
    assert (out / "a.txt").read_bytes() == b"two" and not (out / "mine.txt").exists()


def test_a_download_killed_before_its_check_is_checked_by_the_next_run(tmp_path):
    """A complete ``.part`` (the download ended, the check did not run) is verified and
    used; one longer than the file, or wrong, is removed and downloaded again."""
    data = b"the archive's bytes" * 100
    digest = hashlib.sha256(data).hexdigest()
    with RangeServer({"f": data}) as server:
        remote = RemoteFile("f.tgz", (server.url("f"),), sha256=digest, size=len(data))
        folder = tmp_path / "dl"
        folder.mkdir()
        (folder / "f.tgz.part").write_bytes(data)
        assert fetch(remote, folder).read_bytes() == data
        assert server.ranges == [] and not (folder / "f.tgz.part").exists()
        (folder / "f.tgz").unlink()
        (folder / "f.tgz.part").write_bytes(data + b"more")
        assert fetch(remote, folder).read_bytes() == data
        assert server.ranges == [None]
        # no size published: a complete .part makes the server answer 416, and the
        # download starts again
        remote = RemoteFile("g.tgz", (server.url("f"),), sha256=digest)
        (folder / "g.tgz.part").write_bytes(data)
        assert fetch(remote, folder).read_bytes() == data
        assert server.ranges[-2:] == [f"bytes={len(data)}-", None]


# -- Cars196 ------------------------------------------------------------------------------
def test_cars_original_and_mirror_give_the_same_split(tmp_path):
    orig_root, mirror_root = tmp_path / "a", tmp_path / "b"
    make_cars_original(orig_root / "cars196")
    (mirror_root / "cars196").mkdir(parents=True)
    make_cars_mirror(mirror_root / "cars196" / cars196.MIRROR.filename)
    with pytest.warns(UserWarning):
        cars196.prepare_cars196(tmp_path / "p_orig", orig_root, verify_checksum=False)
    with pytest.warns(UserWarning):
        cars196.prepare_cars196(tmp_path / "p_mirror", mirror_root, verify_checksum=False)
    for split, classes in (("train", {1, 2, 98}), ("test", {99, 150, 196})):
        a = read_split(tmp_path / "p_orig", split)
        b = read_split(tmp_path / "p_mirror", split)
        assert Counter(a.labels.tolist()) == Counter(b.labels.tolist())
        assert set(a.labels.tolist()) == classes
        assert Counter(a.labels.tolist()) == {c: CARS_CLASSES[c] for c in classes}
        assert all(a.image_path(i).is_file() for i in range(len(a)))
        assert all(b.image_path(i).is_file() for i in range(len(b)))
        # the same pictures, whichever the format
        pa = sorted(a.image_path(i).read_bytes() for i in range(len(a)))
        pb = sorted(b.image_path(i).read_bytes() for i in range(len(b)))
        assert pa == pb
    meta = json.loads((tmp_path / "p_mirror/meta.json").read_text())
    assert meta["sha256"] == sha256(mirror_root / "cars196" / cars196.MIRROR.filename)
    assert read_split(tmp_path / "p_orig", "train").paths[0] == "car_ims/000001.jpg"


@pytest.mark.parametrize("extracted", [False, True])
def test_cars_devkit_layout_gives_the_original_split(tmp_path, extracted):
    make_cars_original(tmp_path / "a/cars196")
    make_cars_devkit(tmp_path / "b/cars196", extracted=extracted)
    with pytest.warns(UserWarning):  # a toy dataset: not the published counts
        cars196.prepare_cars196(tmp_path / "p_orig", tmp_path / "a", verify_checksum=False)
    with pytest.warns(UserWarning):
        cars196.prepare_cars196(tmp_path / "p_devkit", tmp_path / "b", verify_checksum=False)
    for split in ("train", "test"):
        a, b = read_split(tmp_path / "p_orig", split), read_split(tmp_path / "p_devkit", split)
        assert Counter(a.labels.tolist()) == Counter(b.labels.tolist())
        pairs_a = sorted((a.image_path(i).read_bytes(), int(a.labels[i])) for i in range(len(a)))
        pairs_b = sorted((b.image_path(i).read_bytes(), int(b.labels[i])) for i in range(len(b)))
        assert pairs_a == pairs_b  # the same pictures with the same official class ids
    meta = json.loads((tmp_path / "p_devkit/meta.json").read_text())
    assert meta["format"].startswith("devkit")
    assert cars196.TEST_LABELS in meta["sha256"]


def test_cars_partial_devkit_and_unknown_layout_fail_before_any_work(tmp_path):
    make_cars_devkit(tmp_path / "raw/cars196")
    (tmp_path / "raw/cars196/cars_test.tgz").unlink()
    with pytest.raises(DatasetError, match="part of the devkit layout.*missing: cars_test.tgz"):
        cars196.prepare_cars196(tmp_path / "out", tmp_path / "raw", verify_checksum=False)
    other = tmp_path / "other/cars196"
    other.mkdir(parents=True)
    (other / "stanford_cars.zip").write_bytes(b"PK")
    with pytest.raises(
        DatasetError, match=r"none of the Cars196 layouts(.|\n)*devkit(.|\n)*classes-by-folder"
    ):
        cars196.prepare_cars196(tmp_path / "out", tmp_path / "other", verify_checksum=False)
    assert not (tmp_path / "out").exists() and not list(other.glob("extracted*"))


def test_cars_placed_original_with_wrong_checksum_does_not_fall_back(tmp_path):
    make_cars_original(tmp_path / "raw/cars196")
    with pytest.raises(ChecksumError, match="md5 .* does not match the published"):
        cars196.prepare_cars196(tmp_path / "out", tmp_path / "raw", verify_checksum=True)


def test_cars_offline_names_every_url(tmp_path, monkeypatch):
    for name in ("ORIGINAL_IMAGES", "ORIGINAL_ANNOTATIONS", "MIRROR"):
        remote = getattr(cars196, name)
        monkeypatch.setattr(cars196, name, RemoteFile(remote.filename, (f"{DEAD}/{name}",)))
    with pytest.raises(DatasetError) as err:
        cars196.prepare_cars196(tmp_path / "out", tmp_path / "raw", verify_checksum=True)
    message = str(err.value)
    assert f"{DEAD}/ORIGINAL_IMAGES" in message and f"{DEAD}/MIRROR" in message
    assert "car_ims.tgz" in message and cars196.MIRROR.filename in message
    assert "car_devkit.tgz" in message and cars196.TEST_LABELS in message  # all three layouts
    # each working source named with where it is and what to place where
    assert cars196.DEVKIT_URL in message and "issues/7545" in message
    assert "kaggle.com/datasets/jessicali9530/stanford-cars-dataset" in message
    assert "cars_train/ and cars_test/" in message and "d5c8f0aa497503f355e17dc7886c3f14" in message


def test_cars_damaged_mat_file(tmp_path):
    make_cars_original(tmp_path / "raw/cars196")
    (tmp_path / "raw/cars196/cars_annos.mat").write_bytes(b"MATLAB 5.0 MAT-file garbage")
    with pytest.raises(DatasetError, match="not a readable MATLAB file"):
        cars196.prepare_cars196(tmp_path / "out", tmp_path / "raw", verify_checksum=False)
    assert not (tmp_path / "out").exists()


# -- Stanford Online Products -------------------------------------------------------------
def test_sop_split_from_ebay_lists(tmp_path):
    root = tmp_path / "raw"
    (root / "sop").mkdir(parents=True)
    counts = make_sop(root / "sop/Stanford_Online_Products.zip")
    with pytest.warns(UserWarning, match="sop: train images"):
        sop.prepare_sop(tmp_path / "out", root, verify_checksum=False)
    train, test = read_split(tmp_path / "out", "train"), read_split(tmp_path / "out", "test")
    assert len(train) == counts["train"] and len(test) == counts["test"]
    assert set(train.labels.tolist()) == {1, 2, 3} and set(test.labels.tolist()) == {4, 5}
    assert train.paths[0] == "bicycle_final/1001_0.JPG" and train.image_path(0).is_file()


def test_sop_falls_back_to_the_google_drive_copy_verified_by_its_checksum(tmp_path):
    """The Stanford host does not answer; Drive first serves its page about large files
    (refused by the size check, never kept), then the archive (verified, used)."""
    built = tmp_path / "built.zip"
    make_sop(built)
    data = built.read_bytes()
    assert (
        "drive.usercontent.google.com" in sop.ARCHIVE.urls[-1] and sop.GOOGLE_DRIVE_ID in sop.ARCHIVE.urls[-1]
    )
    with RangeServer({"page": b"<html>Google Drive can't scan this file</html>", "zip": data}) as server:
        remote = replace(
            sop.ARCHIVE,
            urls=(f"{DEAD}/ftp", f"{DEAD}/http", server.url("page"), server.url("zip")),
            sha256=hashlib.sha256(data).hexdigest(),
            md5=hashlib.md5(data).hexdigest(),
            size=len(data),
        )
        got = fetch(remote, tmp_path / "raw/sop", verify_checksum=True)
    assert got.read_bytes() == data
    assert sorted(p.name for p in (tmp_path / "raw/sop").iterdir()) == ["Stanford_Online_Products.zip"]


def test_sop_bad_list_header(tmp_path):
    root = tmp_path / "raw"
    (root / "sop").mkdir(parents=True)
    with zipfile.ZipFile(root / "sop/Stanford_Online_Products.zip", "w") as zf:
        zf.writestr("Stanford_Online_Products/Ebay_train.txt", "id class path\n1 1 a.JPG\n")
        zf.writestr("Stanford_Online_Products/Ebay_test.txt", "id class path\n")
    with pytest.raises(DatasetError, match="expected the header"):
        sop.prepare_sop(tmp_path / "out", root, verify_checksum=False)


def test_stage_prepare_uses_params_root(tmp_path, monkeypatch):
    """prepare@cub200 through the stage, with prepare.root pointing at a placed archive."""
    import yaml

    from stages import prepare
    from tests.conftest import small_params

    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine/cub200").mkdir(parents=True)
    make_cub(tmp_path / "mine/cub200/CUB_200_2011.tgz")
    params = small_params()
    params["datasets"] = ["cub200"]
    params["prepare"].update(root="mine", verify_checksum=False)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.warns(UserWarning):
        prepare.main(["--dataset", "cub200", "--out", "data/prepared/cub200"])
    meta = json.loads((tmp_path / "data/prepared/cub200/meta.json").read_text())
    assert meta["image_root"] == "../../../mine/cub200/extracted/CUB_200_2011/images"
    assert read_split(tmp_path / "data/prepared/cub200", "train").image_path(0).is_file()


# -- imagefolder: your own photographs --------------------------------------------------
def test_imagefolder_scans_splits_by_class_and_records_names(tmp_path, monkeypatch):
    from dscl.datasets import imagefolder
    from tests.archives import make_image_folder

    monkeypatch.chdir(tmp_path)
    classes = {f"class_{c}": 4 + c for c in range(7)}
    make_image_folder(tmp_path / "photos", classes)
    options = imagefolder.ImageFolderOptions(path="photos", test_fraction=0.5, seed=3)
    get_dataset("imagefolder").run(tmp_path / "prepared", tmp_path / "raw", True, options)
    meta = json.loads((tmp_path / "prepared/meta.json").read_text())
    assert meta["classes"] == sorted(classes)
    train, test = rows(tmp_path / "prepared/train.csv"), rows(tmp_path / "prepared/test.csv")
    assert len(train) + len(test) == sum(classes.values())  # hidden and non-image files skipped
    train_classes, test_classes = {label for _, label in train}, {label for _, label in test}
    assert not train_classes & test_classes and len(test_classes) == 4  # round(3.5) = 4
    assert [meta["classes"][c] for c in sorted(test_classes)] == meta["test_class_names"]
    for path, label in train + test:  # labels number the sorted class names
        assert path.split("/")[0] == meta["classes"][label]
    assert read_split(tmp_path / "prepared", "test").image_path(0).is_file()
    # the same seed draws the same classes; another seed, others
    again = imagefolder.split_classes(7, 0.5, 3)
    assert sorted(test_classes) == again.tolist()
    assert any(imagefolder.split_classes(7, 0.5, s).tolist() != again.tolist() for s in range(4, 10))


def test_imagefolder_refuses_bad_folders(tmp_path):
    from dscl.datasets import imagefolder
    from tests.archives import make_image_folder

    spec = get_dataset("imagefolder")

    def prepare(path):
        spec.run(tmp_path / "out", tmp_path, True, imagefolder.ImageFolderOptions(path=str(path)))

    with pytest.raises(DatasetError, match="is not a folder.*one sub-folder per class"):
        prepare(tmp_path / "missing")
    make_image_folder(tmp_path / "three", {"a": 2, "b": 2, "c": 2})
    with pytest.raises(DatasetError, match=r"3 class sub-folder\(s\).*at least 4"):
        prepare(tmp_path / "three")
    make_image_folder(tmp_path / "empty", {"a": 2, "b": 2, "c": 2, "d": 2})
    (tmp_path / "empty/e").mkdir()
    with pytest.raises(DatasetError, match=r"\['e'\].*hold no image"):
        prepare(tmp_path / "empty")
    make_image_folder(tmp_path / "broken", {"a": 2, "b": 2, "c": 2, "d": 2})
    (tmp_path / "broken/b/000.jpg").write_bytes(b"\xff\xd8 truncated")
    with pytest.raises(DatasetError, match="1 image"):
        prepare(tmp_path / "broken")
    assert not (tmp_path / "out").exists()  # nothing half-written
    with pytest.raises(ValueError, match="test_fraction must be between 0 and 1"):
        imagefolder.ImageFolderOptions(test_fraction=1.0)
    for n in (4, 5, 40):  # at least two classes on each side
        held = imagefolder.split_classes(n, 0.05, 0)
        assert 2 <= len(held) <= n - 2
