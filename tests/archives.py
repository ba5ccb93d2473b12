"""Miniature archives in the real formats of the three datasets (tiny JPEGs, the real
metadata files, a MATLAB .mat for Cars196), and a loopback HTTP server with byte ranges."""

from __future__ import annotations

import csv
import http.server
import io
import tarfile
import threading
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image


def jpeg_bytes(seed: int, size: tuple[int, int] = (12, 16)) -> bytes:
    """A random JPEG of ``size`` (height, width)."""
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


def add_bytes(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tf.addfile(info, io.BytesIO(data))


def make_cub(
    path: Path, classes=(1, 2, 100, 101, 150, 200), per_class=3, size=(12, 16), broken: str | None = None
) -> dict[int, int]:
    """CUB_200_2011.tgz in miniature. ``per_class``: images per class, one number or a
    mapping class -> number; ``size``: (height, width) of the images; ``broken``: the
    relative path of an image whose bytes are not a JPEG. Returns class -> number of images."""
    counts = per_class if isinstance(per_class, dict) else {c: per_class for c in classes}
    lines = {
        "images.txt": [],
        "image_class_labels.txt": [],
        "train_test_split.txt": [],
        "bounding_boxes.txt": [],
    }
    with tarfile.open(path, "w:gz") as tf:
        i = 0
        for c, count in counts.items():
            for j in range(count):
                i += 1
                rel = f"{c:03d}.Bird_{c}/Bird_{c}_{j}.jpg"
                data = b"not a jpeg" if rel == broken else jpeg_bytes(i, size)
                add_bytes(tf, f"CUB_200_2011/images/{rel}", data)
                lines["images.txt"].append(f"{i} {rel}")
                lines["image_class_labels.txt"].append(f"{i} {c}")
                lines["train_test_split.txt"].append(f"{i} {j % 2}")  # classification split: ignored
                lines["bounding_boxes.txt"].append(f"{i} 1.0 2.0 3.0 4.0")
        for name, rows in lines.items():
            add_bytes(tf, f"CUB_200_2011/{name}", ("\n".join(rows) + "\n").encode())
        add_bytes(tf, "CUB_200_2011/classes.txt", "".join(f"{c} {c:03d}.Bird_{c}\n" for c in counts).encode())
    return counts


CARS_CLASSES = {1: 3, 2: 2, 98: 2, 99: 3, 150: 2, 196: 2}  # class -> images


def _cars_items():
    i = 0
    for c, count in CARS_CLASSES.items():
        for _ in range(count):
            i += 1
            yield i, c


def make_cars_original(folder: Path) -> None:
    """car_ims.tgz + cars_annos.mat (a MATLAB struct array, as the original)."""
    from scipy.io import savemat

    folder.mkdir(parents=True, exist_ok=True)
    items = list(_cars_items())
    dt = [
        (f, object) for f in ("relative_im_path", "bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "test")
    ]
    ann = np.zeros((1, len(items)), dtype=dt)
    with tarfile.open(folder / "car_ims.tgz", "w:gz") as tf:
        for k, (i, c) in enumerate(items):
            add_bytes(tf, f"car_ims/{i:06d}.jpg", jpeg_bytes(100 + i))
            ann[0, k] = (f"car_ims/{i:06d}.jpg", 1, 2, 10, 12, c, k % 2)
    names = np.array([f"Car Model {c}" for c in range(1, 197)], dtype=object)
    savemat(folder / "cars_annos.mat", {"annotations": ann, "class_names": names})


def make_cars_devkit(folder: Path, extracted: bool = False) -> None:
    """The devkit layout of torchvision's StanfordCars (cars_train.tgz, cars_test.tgz,
    car_devkit.tgz, cars_test_annos_withlabels.mat), holding the same images as the
    original, split into its own train and test subsets; ``extracted``: the folders
    cars_train/, cars_test/ and devkit/ instead of the three archives."""
    from scipy.io import savemat

    folder.mkdir(parents=True, exist_ok=True)
    items = list(_cars_items())
    dt = [(f, object) for f in ("bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "fname")]
    files: dict[str, dict[str, bytes]] = {"cars_train": {}, "cars_test": {}, "devkit": {}}
    annos = {"cars_train": [], "cars_test": []}
    for k, (i, c) in enumerate(items):
        subset = "cars_train" if k % 2 == 0 else "cars_test"
        name = f"{len(annos[subset]) + 1:05d}.jpg"
        files[subset][name] = jpeg_bytes(100 + i)
        annos[subset].append((1, 2, 10, 12, c, name))

    def mat(rows) -> bytes:
        ann = np.zeros((1, len(rows)), dtype=dt)
        for j, row in enumerate(rows):
            ann[0, j] = row
        buf = io.BytesIO()
        savemat(buf, {"annotations": ann})
        return buf.getvalue()

    names = np.array([f"Car Model {c}" for c in range(1, 197)], dtype=object)
    meta = io.BytesIO()
    savemat(meta, {"class_names": names})
    files["devkit"]["cars_meta.mat"] = meta.getvalue()
    files["devkit"]["cars_train_annos.mat"] = mat(annos["cars_train"])
    files["devkit"]["cars_test_annos.mat"] = mat([(*r[:4], 0, r[5]) for r in annos["cars_test"]])
    (folder / "cars_test_annos_withlabels.mat").write_bytes(mat(annos["cars_test"]))
    archives = {"cars_train": "cars_train.tgz", "cars_test": "cars_test.tgz", "devkit": "car_devkit.tgz"}
    for sub, members in files.items():
        if extracted:
            (folder / sub).mkdir()
            for name, data in members.items():
                (folder / sub / name).write_bytes(data)
            continue
        with tarfile.open(folder / archives[sub], "w:gz") as tf:
            for name, data in members.items():
                add_bytes(tf, f"{sub}/{name}", data)


def make_cars_mirror(path: Path) -> None:
    """The classes-by-folder mirror zip, holding the same images as the original."""
    items = list(_cars_items())
    annos = {"train": [], "test": []}
    with zipfile.ZipFile(path, "w") as zf:
        for k, (i, c) in enumerate(items):
            subset = "train" if k % 2 == 0 else "test"
            name = f"{len(annos[subset]) + 1:05d}.jpg"  # numbered per subset, as the mirror
            zf.writestr(f"car_data/car_data/{subset}/Car Model {c}/{name}", jpeg_bytes(100 + i))
            annos[subset].append([name, 1, 2, 10, 12, c])
        for subset, rows in annos.items():
            buf = io.StringIO()
            csv.writer(buf, lineterminator="\n").writerows(rows)
            zf.writestr(f"anno_{subset}.csv", buf.getvalue())
        zf.writestr("names.csv", "".join(f"Car Model {c}\n" for c in range(1, 197)))


def make_sop(path: Path) -> dict[str, int]:
    """Stanford_Online_Products.zip in miniature."""
    counts = {}
    with zipfile.ZipFile(path, "w") as zf:
        image_id = 0
        for split, classes in (("train", (1, 2, 3)), ("test", (4, 5))):
            lines = ["image_id class_id super_class_id path"]
            for c in classes:
                for j in range(2):
                    image_id += 1
                    rel = f"bicycle_final/{1000 + c}_{j}.JPG"
                    zf.writestr(f"Stanford_Online_Products/{rel}", jpeg_bytes(500 + image_id))
                    lines.append(f"{image_id} {c} 1 {rel}")
            counts[split] = len(lines) - 1
            zf.writestr(f"Stanford_Online_Products/Ebay_{split}.txt", "\n".join(lines) + "\n")
    return counts


class RangeServer:
    """Serves ``files`` (name -> bytes) on 127.0.0.1 with HTTP byte ranges; records the
    Range headers it received."""

    def __init__(self, files: dict[str, bytes]):
        self.files = files
        self.ranges: list[str | None] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                data = outer.files.get(self.path.lstrip("/"))
                if data is None:
                    self.send_error(404)
                    return
                rng = self.headers.get("Range")
                outer.ranges.append(rng)
                start = int(rng.split("=")[1].split("-")[0]) if rng else 0
                if start >= len(data) > 0:  # as servers do: the range is past the end
                    self.send_error(416)
                    return
                self.send_response(206 if rng else 200)
                self.send_header("Content-Length", str(len(data) - start))
                if rng:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()
                self.wfile.write(data[start:])

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def make_image_folder(folder: Path, classes: dict[str, int], size: tuple[int, int] = (12, 16)) -> None:
    """A folder of class sub-folders (``classes``: name -> number of images), JPEG and PNG
    images whose brightness depends on the class, plus what must be skipped: a hidden
    folder, a text file, a stray file at the top."""
    for c, (name, count) in enumerate(sorted(classes.items())):
        for i in range(count):
            rng = np.random.default_rng(1000 * c + i)
            pixels = np.clip(rng.normal(30 + 25 * c, 20, (*size, 3)), 0, 255).astype(np.uint8)
            target = folder / name / ("sub" if i % 3 == 2 else "") / f"{i:03d}.{'png' if i % 2 else 'jpg'}"
            target.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(target)
        (folder / name / "notes.txt").write_text("not an image\n")
    (folder / ".cache").mkdir(parents=True, exist_ok=True)
    (folder / ".cache" / "x.jpg").write_bytes(b"not read")
    (folder / "README.txt").write_text("stray file\n")
