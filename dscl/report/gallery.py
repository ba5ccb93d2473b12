"""Retrieval galleries: each row a query and its nearest neighbours, every neighbour framed
green when it shares the query's class and red when it does not, captioned with its class
and distance. Composed with Pillow (a grid of thumbnails: fast, and small PNG files).

:func:`retrieval_rows` chooses what to show from an embedding; :func:`draw_gallery`
draws rows; the report draws one figure per method (the same seeded queries for every
method, then the queries the method gets most wrong) and one comparison figure, and the
``dscl search --figure`` command draws the same kind of figure for your own images.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from dscl.atomic import atomic_path
from dscl.scoring.neighbors import search

__all__ = [
    "Tile",
    "choose_queries",
    "draw_gallery",
    "neighbours",
    "retrieval_rows",
    "thumbnail",
    "worst_queries",
]

GREEN, RED, BLUE, GREY = (30, 150, 60), (210, 40, 40), (40, 90, 200), (120, 120, 120)


@dataclass(frozen=True)
class Tile:
    """One thumbnail: an RGB uint8 image (h, w, 3), its caption lines and its frame:
    ``True`` (same class as the query: green), ``False`` (red), None (the query: blue)."""

    image: np.ndarray
    caption: tuple[str, ...]
    correct: bool | None = None


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType sizes
        return ImageFont.load_default()


def thumbnail(image: np.ndarray, size: int) -> Image.Image:
    img = Image.fromarray(np.asarray(image, dtype=np.uint8).squeeze()).convert("RGB")
    resample = Image.NEAREST if max(img.size) < size // 2 else Image.BILINEAR  # digits' 8x8 stay crisp
    scale = size / max(img.size)
    return img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), resample)


def draw_gallery(
    rows: Sequence[tuple[str, Sequence[Tile]]],
    out: Path,
    title: str,
    thumb: int = 72,
    sections: dict[int, str] | None = None,
    columns: dict[int, str] | None = None,
) -> None:
    """Draw ``rows`` (a label, then its tiles left to right) into the PNG ``out``.

    ``sections`` maps a row index to a heading drawn above that row; ``columns`` maps a
    column index to a heading drawn above the first row (a group of columns' name).
    """
    sections = sections or {}
    if columns:
        sections = {0: "", **sections}
    font, small = _font(13), _font(10)
    border, pad, caption_h, label_w = 3, 6, 26, 120
    cols = max(len(tiles) for _, tiles in rows)
    cell_w, cell_h = thumb + 2 * border + pad, thumb + 2 * border + caption_h + pad
    heading_h = 22
    width = label_w + cols * cell_w + pad
    height = 30 + len(rows) * cell_h + heading_h * len(sections) + pad
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((pad, 8), title, fill="black", font=font)
    y = 30
    for r, (label, tiles) in enumerate(rows):
        if r in sections:
            draw.text((pad, y + 4), sections[r], fill=GREY, font=font)
            if r == 0:
                for c, name in (columns or {}).items():
                    draw.text((label_w + c * cell_w, y + 4), name, fill="black", font=font)
            y += heading_h
        for i, line in enumerate(label.split("\n")[:4]):
            draw.text((pad, y + 8 + 13 * i), line, fill="black", font=small)
        for c, tile in enumerate(tiles):
            x = label_w + c * cell_w
            color = BLUE if tile.correct is None else (GREEN if tile.correct else RED)
            img = thumbnail(tile.image, thumb)
            draw.rectangle([x, y, x + thumb + 2 * border - 1, y + thumb + 2 * border - 1], fill=color)
            canvas.paste(img, (x + border + (thumb - img.width) // 2, y + border + (thumb - img.height) // 2))
            fits = (thumb + 2 * border) // 6  # characters of the small font under a thumbnail
            for i, line in enumerate(tile.caption[:2]):
                text = line if len(line) <= fits else line[: fits - 1] + "…"
                draw.text((x, y + thumb + 2 * border + 1 + 12 * i), text, fill="black", font=small)
        y += cell_h
    # 256 colours (median cut, deterministic): a third of the RGB file for photographs
    small_file = canvas.quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    with atomic_path(out) as tmp:
        small_file.save(tmp, format="PNG", optimize=True)


def neighbours(embeddings: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``(distances, ids)`` (q, k) of the ``k`` nearest rows of ``embeddings`` to each
    query row (indices into ``embeddings``), the query itself excluded (exact search)."""
    x = np.asarray(embeddings, dtype=np.float32)
    q = np.asarray(queries, dtype=np.int64)
    return search(x, x[q], k, exclude_self=q)


def choose_queries(labels: np.ndarray, count: int, seed: int = 0) -> np.ndarray:
    """``count`` test images drawn with ``seed``, from as many different classes as
    possible (one per class among a seeded draw of classes, then again): the same queries
    for every method, whatever its embedding."""
    rng = np.random.default_rng(seed)
    classes = rng.permutation(np.unique(labels))
    chosen: list[int] = []
    while len(chosen) < min(count, len(labels)):
        for c in classes:
            pool = np.setdiff1d(np.flatnonzero(labels == c), chosen)
            if len(pool) and len(chosen) < count:
                chosen.append(int(rng.choice(pool)))
    return np.array(chosen, dtype=np.int64)


def worst_queries(
    labels: np.ndarray,
    ids: np.ndarray,
    count: int,
    exclude: Sequence[int] = (),
    queries: np.ndarray | None = None,
) -> np.ndarray:
    """The ``count`` queries with the lowest precision at K (row ``i`` of ``ids``: the
    neighbours of test image ``queries[i]``; every test image, in order, by default),
    ties to the lowest index, leaving out ``exclude``."""
    queries = np.arange(len(labels)) if queries is None else np.asarray(queries)
    precision = (labels[ids] == labels[queries][:, None]).mean(1)
    order = queries[np.lexsort((queries, precision))]
    left_out = set(exclude)
    return np.array([i for i in order if i not in left_out][:count], dtype=np.int64)


def retrieval_rows(
    embeddings: np.ndarray,
    labels: np.ndarray,
    queries: np.ndarray,
    k: int,
    image: Callable[[int], np.ndarray],
    class_name: Callable[[int], str] = str,
    label: str = "",
) -> list[tuple[str, list[Tile]]]:
    """One row per query: the query, then its ``k`` neighbours in ``embeddings``, framed
    by whether they share its class. ``image(i)`` gives test image ``i`` for display."""
    dist, ids = neighbours(embeddings, queries, k)
    rows = []
    for q, d_row, id_row in zip(queries, dist, ids):
        tiles = [Tile(image(int(q)), (f"query: {class_name(int(labels[q]))}",), None)]
        for d, j in zip(d_row, id_row):
            tiles.append(
                Tile(
                    image(int(j)), (class_name(int(labels[j])), f"d = {d:.3f}"), bool(labels[j] == labels[q])
                )
            )
        hits = sum(t.correct for t in tiles[1:])
        rows.append((f"{label}\n{hits}/{k} correct".strip(), tiles))
    return rows
