"""Stanford Online Products: 120,053 images of 22,634 products.

The split is given by ``Ebay_train.txt`` (59,551 images, 11,318 classes) and
``Ebay_test.txt`` (60,502 images, 11,316 classes).
"""

from __future__ import annotations

from pathlib import Path

from dscl.datasets.archive import RemoteFile, extract, fetch
from dscl.datasets.common import as_int, finish, read_rows
from dscl.datasets.registry import DatasetSpec, register

# The authors' Google Drive copy of the same archive (their repository names it; it is
# what pytorch-metric-learning and open-metric-learning download): the fallback when the
# Stanford host does not answer, verified against the same published checksums.
# ``confirm=t`` skips Drive's page about files too large to scan; a page served instead
# of the archive fails the size check and the next source is tried.
GOOGLE_DRIVE_ID = "1TclrpQOF_ullUP99wk_gjGN8pKvtErG8"
ARCHIVE = RemoteFile(
    filename="Stanford_Online_Products.zip",
    urls=(
        "ftp://cs.stanford.edu/cs/cvgl/Stanford_Online_Products.zip",
        "http://ftp.cs.stanford.edu/cs/cvgl/Stanford_Online_Products.zip",
        f"https://drive.usercontent.google.com/download?id={GOOGLE_DRIVE_ID}&export=download&confirm=t",
    ),
    sha256="b04fa78210e69fab050ce73939550e1cd0f96890bdd98ec9fee732c3b756ef48",
    md5="7f73d41a2f44250d4779881525aea32e",
    size=3_083_860_082,
)
EXPECTED = {"train_images": 59551, "test_images": 60502, "train_classes": 11318, "test_classes": 11316}


def parse_list(path: Path) -> list[tuple[str, int]]:
    """Rows of ``Ebay_{train,test}.txt``: header ``image_id class_id super_class_id path``."""
    header = ["image_id", "class_id", "super_class_id", "path"]
    rows = read_rows(path, 4, f"4 fields: {' '.join(header)}", "Stanford Online Products", header)
    return [(row[3], as_int(row[1], f"{path}, line {number}", "class_id")) for number, row in rows]


def prepare_sop(out_dir: Path, root: Path, verify_checksum: bool) -> None:
    folder = root / "sop"
    archive = fetch(ARCHIVE, folder, verify_checksum)
    base = extract(archive, folder / "extracted") / "Stanford_Online_Products"
    tables = {"train": parse_list(base / "Ebay_train.txt"), "test": parse_list(base / "Ebay_test.txt")}
    finish(
        "sop",
        out_dir,
        base,
        tables,
        EXPECTED,
        strict=verify_checksum,
        meta={"archive": ARCHIVE.filename, "sha256": ARCHIVE.sha256 if verify_checksum else None},
    )


register(DatasetSpec("sop", "Stanford Online Products, Ebay_train.txt / Ebay_test.txt", prepare_sop))
