"""The report's figures: the methods compared, and t-SNE plots of the test embeddings
(with thumbnails of the images for datasets of images)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from dscl import layout
from dscl.atomic import atomic_path
from dscl.linalg import l2_normalize
from dscl.report.options import TsneConfig
from dscl.report.tables import METHOD_NAMES, VARIANTS, metric_label

__all__ = ["class_colors", "class_markers", "plot_methods", "plot_tsne"]


def plot_methods(dataset: str, methods: list[str], metrics_dir: Path, out: Path) -> None:
    """One figure comparing the methods: NMI and R@1 (%), with and without SC."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measured = {m: json.loads(layout.metrics_file(metrics_dir, m).read_text()) for m in methods}
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.9 + 0.42 * len(methods)), dpi=100, sharey=True)
    y = np.arange(len(methods))
    for ax, metric in zip(axes, ("recall@1", "nmi")):
        for shift, (variant, vname), color in zip((-0.2, 0.2), VARIANTS.items(), ("#1f77b4", "#ff7f0e")):
            values = [measured[m][variant][metric] for m in methods]
            spread = [measured[m].get("std", {}).get(variant, {}).get(metric) for m in methods]
            errors = None if all(e is None for e in spread) else [e or 0.0 for e in spread]
            bars = ax.barh(
                y + shift,
                values,
                height=0.38,
                color=color,
                label=vname,
                xerr=errors,
                error_kw={"elinewidth": 0.8, "capsize": 2},
            )
            ax.bar_label(bars, fmt="%.1f", fontsize=7, padding=2)
        ax.set_title(f"{dataset}: {metric_label(metric)} (%, test classes)", fontsize=10)
        ax.set_xlim(0, 105)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(y, [METHOD_NAMES[m] for m in methods], fontsize=8)
    axes[0].invert_yaxis()
    axes[1].legend(fontsize=8, loc="lower right")
    _save(fig, out)


def class_colors(n: int) -> list:
    """``n`` colours, distinct up to 60 (tab20, tab20b, tab20c), then repeated with another
    marker (:func:`class_markers`): more than 20 classes never silently reuse a colour."""
    import matplotlib

    palette = [c for name in ("tab20", "tab20b", "tab20c") for c in matplotlib.colormaps[name].colors]
    if n <= 10:
        palette = list(matplotlib.colormaps["tab10"].colors)
    return [palette[i % len(palette)] for i in range(n)]


def class_markers(n: int) -> list[str]:
    """A marker per class: circles for the first 60, then squares, triangles, ..."""
    shapes = ("o", "s", "^", "D", "v", "P")
    return [shapes[(i // 60) % len(shapes)] for i in range(n)]


def plot_tsne(
    emb: np.ndarray,
    labels: np.ndarray,
    title: str,
    out: Path,
    cfg: TsneConfig,
    image: Callable[[int], np.ndarray] | None = None,
) -> None:
    """The t-SNE of a test embedding, one colour per class; with ``image`` (test image
    ``i`` for display), thumbnails framed in their class's colour at a seeded subsample of
    ``cfg.thumbnails`` points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.manifold import TSNE

    rng = np.random.default_rng(cfg.seed)
    classes, idx = _subsample(labels, cfg, rng)
    x = l2_normalize(emb[idx].astype(np.float64))
    thumbs = image is not None and cfg.thumbnails > 0
    fig, ax = plt.subplots(figsize=(8, 8) if thumbs else (5, 5), dpi=100)
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    if np.ptp(x, axis=0).max() < 1e-6:  # t-SNE is undefined when every point coincides
        ax.text(
            0.5,
            0.5,
            "degenerate embedding:\nall test points coincide",
            ha="center",
            va="center",
            transform=ax.transAxes,
        )
        _save(fig, out)
        return
    perplexity = min(cfg.perplexity, (len(idx) - 1) / 3)
    # exact t-SNE for tiny sets only (Barnes-Hut fails on them); Barnes-Hut from a few
    # hundred points, where exact t-SNE's O(n^2) iterations cost ten seconds and more
    method = "exact" if len(idx) <= 300 else "barnes_hut"
    xy = TSNE(perplexity=perplexity, init="pca", method=method, random_state=cfg.seed).fit_transform(x)
    colors, markers = class_colors(len(classes)), class_markers(len(classes))
    for i, c in enumerate(classes):
        sel = labels[idx] == c
        ax.scatter(xy[sel, 0], xy[sel, 1], s=6, color=colors[i], marker=markers[i], label=str(c))
    if thumbs:
        color_of = dict(zip(classes.tolist(), colors))
        shown = np.sort(rng.choice(len(idx), min(cfg.thumbnails, len(idx)), replace=False))
        _thumbnails(
            ax, xy[shown], [image(int(idx[j])) for j in shown], [color_of[int(labels[idx[j]])] for j in shown]
        )
    if len(classes) <= 10:
        ax.legend(title="class", fontsize=7, markerscale=2, loc="best")
    _save(fig, out)


def _subsample(
    labels: np.ndarray, cfg: TsneConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """The classes shown (at most ``cfg.max_classes``, drawn at random) and the test
    points shown of them (at most ``cfg.max_points``), both sorted."""
    classes = np.unique(labels)
    if len(classes) > cfg.max_classes:
        classes = np.sort(rng.choice(classes, cfg.max_classes, replace=False))
    idx = np.flatnonzero(np.isin(labels, classes))
    if len(idx) > cfg.max_points:
        idx = np.sort(rng.choice(idx, cfg.max_points, replace=False))
    return classes, idx


def _thumbnails(ax, points: np.ndarray, images: list, frames: list) -> None:
    """Each image as a thumbnail at its point, framed in its colour."""
    from matplotlib.offsetbox import AnnotationBbox, OffsetImage

    from dscl.report.gallery import thumbnail

    for xy, img, color in zip(points, images, frames):
        thumb = np.asarray(thumbnail(img, 40))
        box = AnnotationBbox(
            OffsetImage(thumb, zoom=0.8),
            xy,
            frameon=True,
            pad=0.15,
            bboxprops={"edgecolor": color, "linewidth": 2},
        )
        ax.add_artist(box)


def _save(fig, out: Path) -> None:
    import io

    import matplotlib.pyplot as plt
    from PIL import Image

    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    # 256 colours (median cut, deterministic): thumbnails of photographs make large RGB files
    image = Image.open(buf).convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    with atomic_path(out) as tmp:
        image.save(tmp, format="PNG", optimize=True)
