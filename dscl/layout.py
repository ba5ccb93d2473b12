"""The file layout of a pipeline run, named once: dvc.yaml names each stage's folders,
and the files inside them are named here (the stages, the report and the tests read
these functions, never a retyped path).

With several training seeds (``train.common.seeds``) the first seed's run keeps the plain
names and each other seed ``s`` gets its own: ``seed-<s>``.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "FEATURE_VIEWS",
    "curves_dir",
    "detail_file",
    "details_files",
    "details_folder",
    "done_file",
    "embedding_file",
    "embedding_files",
    "feature_file",
    "info_file",
    "labels_file",
    "live_dir",
    "loss_curve",
    "metrics_file",
    "model_file",
    "model_files",
    "run_name",
    "state_file",
    "train_key",
]

CURVES = Path("plots") / "metrics"  # DVCLive's folder of curves inside a live folder

# the feature cache's arrays (data/features/<dataset>): the training images as they are and
# mirrored, and the test images
FEATURE_VIEWS = ("train", "train_mirrored", "test")


def feature_file(folder: Path, view: str) -> Path:
    """``<view>.npy`` of a feature cache: the pooled features (n, D), float32."""
    return Path(folder) / f"{view}.npy"


def labels_file(folder: Path, split: str = "test") -> Path:
    """``<split>_labels.npy``: the labels of a feature cache's split, or of an embedding
    folder's test images (int64, in the prepared table's order)."""
    return Path(folder) / f"{split}_labels.npy"


def info_file(folder: Path) -> Path:
    """``info.json`` of a feature cache or an embedding folder: what made it."""
    return Path(folder) / "info.json"


def train_key(dataset: str, method: str) -> str:
    """The key of a (dataset, method) pair: ``train@<key>``, ``models/<key>``."""
    return f"{dataset}-{method}"


def run_name(seed: int) -> str:
    """The name of another seed's run: ``seed-<s>``."""
    return f"seed-{seed}"


def _seed_of(name: str) -> int:
    return int(name.split("-", 1)[1])


def model_file(folder: Path, seed: int, first: bool) -> Path:
    """``models/<key>/model.pt`` (the first seed) or ``seed-<s>.pt``."""
    return Path(folder) / ("model.pt" if first else f"{run_name(seed)}.pt")


def model_files(folder: Path) -> list[tuple[str, Path]]:
    """The training runs of a model folder, in seed order: ``model.pt`` first, then
    ``seed-<s>.pt``; as ``(run name, "" for the first, path)``."""
    folder = Path(folder)
    if not (folder / "model.pt").is_file():
        raise FileNotFoundError(f"{folder / 'model.pt'} not found: run the train stage first")
    others = sorted(folder.glob("seed-*.pt"), key=lambda p: _seed_of(p.stem))
    return [("", folder / "model.pt")] + [(p.stem, p) for p in others]


def state_file(checkpoint: Path, seed: int, first: bool) -> Path:
    """The resumable state of a run in progress."""
    return Path(checkpoint) / ("state.pt" if first else f"state-{run_name(seed)}.pt")


def done_file(checkpoint: Path, seed: int) -> Path:
    """A finished run's result while other seeds still train."""
    return Path(checkpoint) / f"done-{run_name(seed)}.pt"


def live_dir(live: Path, seed: int, first: bool) -> Path:
    """The DVCLive folder of a run: the stage's own for the first seed."""
    return Path(live) if first else Path(live) / CURVES / run_name(seed)


def curves_dir(live: Path) -> Path:
    """The curves (``loss.tsv``, ``val/<variant>/<metric>.tsv``) inside a live folder."""
    return Path(live) / CURVES


def loss_curve(curves: Path) -> Path:
    """The training loss (``loss.tsv``) in a folder of curves (:func:`curves_dir`)."""
    return Path(curves) / "loss.tsv"


def embedding_file(folder: Path, name: str = "") -> Path:
    """``test.npy`` of the first run, ``<run name>/test.npy`` of another."""
    return Path(folder) / name / "test.npy"


def embedding_files(folder: Path) -> list[tuple[int | None, Path]]:
    """The test embeddings of every run, ``(seed or None for the first, path)``."""
    folder = Path(folder)
    others = sorted(folder.glob("seed-*/test.npy"), key=lambda p: _seed_of(p.parent.name))
    return [(None, embedding_file(folder))] + [(_seed_of(p.parent.name), p) for p in others]


def details_folder(folder: Path, run: int) -> Path:
    """``data/evaluation/<dataset>/<method>/run-<i>``: the per-query quantities of the
    ``i``-th run's evaluation (one ``<variant>.<name>.npy`` each, for the bootstrap)."""
    return Path(folder) / f"run-{run}"


def detail_file(folder: Path, variant: str, name: str) -> Path:
    """``<variant>.<name>.npy`` in a run's details folder (:func:`details_folder`)."""
    return Path(folder) / f"{variant}.{name}.npy"


def metrics_file(folder: Path, method: str) -> Path:
    """``reports/metrics/<dataset>/<method>.json``: a method's test figures, in the
    dataset's folder of metrics."""
    return Path(folder) / f"{method}.json"


def details_files(folder: Path) -> list[dict[str, dict[str, Path]]]:
    """The evaluation details of every run, in run order: ``{variant: {name: path}}``."""
    runs = sorted(Path(folder).glob("run-*"), key=lambda p: int(p.name.split("-", 1)[1]))
    out = []
    for run in runs:
        found: dict[str, dict[str, Path]] = {}
        for path in sorted(run.glob("*.npy")):
            variant, name = path.stem.split(".", 1)
            found.setdefault(variant, {})[name] = path
        out.append(found)
    return out
