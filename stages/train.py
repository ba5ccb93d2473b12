"""Stage train@<dataset>-<method>: learn the embedding.

* ``vanilla``: no training (the embedding is the pretrained backbone's feature);
* ``softmax``: all layers fine-tuned for classification of the training classes;
* ``dscl_last``: only the last layer learned with DSCL, on the cached features;
* ``dscl_e2e``: all trainable layers learned with DSCL, on images (chunked update).

Writes ``<out>/model.pt``; the training curve goes to DVCLive in ``--live``; the
resumable state to ``--checkpoint`` (an interrupted run resumes from it).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from dscl.atomic import atomic_path, write_text
from dscl.backbones import build_backbone
from dscl.checkpoint import Checkpointer
from dscl.datasets import read_split
from dscl.device import resolve_device
from dscl.images import CROP_MODES, BatchDecoder
from dscl.training import EmbeddingNet, OptimizerConfig, train_last_layer, train_on_images
from stages.cli import run
from stages.features import image_transform, read_feature_params
from stages.params import METHODS, ParamsError, build, entry, load_params, section

CHECKPOINT_NOTE = (
    "The training state of an interrupted run is kept here (state.pt) and resumed by the\n"
    "next run with the same settings; it is removed when training completes.\n"
)


@dataclass(frozen=True)
class CommonParams:
    seed: int = 0
    device: str = "auto"
    checkpoint_every: int = 10


@dataclass(frozen=True)
class DatasetTrainParams:
    embedding_dim: int | None = None  # null: the number of training classes (the paper)
    class_subsample: int | None = None  # train on this many random classes (SOP: 512)
    mirror: bool = True  # random horizontal mirroring of training images


@dataclass(frozen=True)
class LastLayerParams:
    iterations: int = 200
    batch_size: int = 1260
    optimizer: str = "sgd"
    lr: float = 1.0
    momentum: float = 0.9
    weight_decay: float = 0.0

    def __post_init__(self):
        optimizer_config(self)  # refuses an unknown optimizer or a bad learning rate
        if self.iterations < 0 or self.batch_size < 2:
            raise ValueError("iterations must be >= 0 and batch_size >= 2")


@dataclass(frozen=True)
class ImageTrainParams:
    iterations: int = 100
    batch_size: int = 1260  # n = 18 x 70
    chunk_size: int = 70  # sub-batch: memory is bounded by it, not by n
    optimizer: str = "sgd"
    lr: float = 0.01  # the learned last layer (and the softmax classifier)
    backbone_lr: float | None = None  # the pretrained layers; None: lr
    momentum: float = 0.9
    weight_decay: float = 0.0
    crop_mode: str = "random"
    num_workers: int = 4

    def __post_init__(self):
        optimizer_config(self)
        if self.backbone_lr is not None and not self.backbone_lr > 0:
            raise ValueError(f"backbone_lr must be positive (or null), got {self.backbone_lr}")
        if self.iterations < 0 or self.batch_size < 2 or self.chunk_size < 1:
            raise ValueError("iterations must be >= 0, batch_size >= 2 and chunk_size >= 1")
        if self.crop_mode not in CROP_MODES:
            raise ValueError(f"crop_mode must be one of {list(CROP_MODES)}, got {self.crop_mode!r}")


@dataclass(frozen=True)
class VanillaParams:
    """The vanilla method has nothing to learn."""


METHOD_PARAMS = {
    "vanilla": VanillaParams,
    "softmax": ImageTrainParams,
    "dscl_last": LastLayerParams,
    "dscl_e2e": ImageTrainParams,
}


def optimizer_config(p) -> OptimizerConfig:
    return OptimizerConfig(p.optimizer, p.lr, p.momentum, p.weight_decay,
                           backbone_lr=getattr(p, "backbone_lr", None))


def training_pool(labels: np.ndarray, class_subsample: int | None, seed: int) -> np.ndarray:
    """Indices of the training examples of the (sub-sampled) training classes."""
    classes = np.unique(labels)
    if class_subsample is not None:
        if not 2 <= class_subsample <= len(classes):
            raise ParamsError(
                f"class_subsample must be in [2, {len(classes)}] (the training classes), "
                f"got {class_subsample}"
            )
        classes = np.sort(np.random.default_rng(seed).choice(classes, class_subsample, replace=False))
    return np.flatnonzero(np.isin(labels, classes))


class LiveLog:
    """Training curves through DVCLive (``dvcyaml=False``: dvc.yaml declares them)."""

    def __init__(self, directory: Path, resume: bool):
        from dvclive import Live

        self.live = Live(str(directory), dvcyaml=False, save_dvc_exp=False, resume=resume)

    def __call__(self, step: int, values: dict) -> None:
        self.live.step = step
        for name, value in values.items():
            self.live.log_metric(name, value)
        self.live.next_step()

    def summary(self, values: dict) -> None:
        """Final values of the run, written to the summary ``metrics.json``."""
        for name, value in values.items():
            self.live.summary[name] = value

    def close(self) -> None:
        self.live.end()
        curve = Path(self.live.plots_dir) / "metrics" / "loss.tsv"
        if not curve.exists():  # nothing was learned (vanilla): an empty curve
            write_text(curve, "step\tloss\n")


class NoLog:
    """The logger of processes other than rank 0."""

    def __call__(self, step: int, values: dict) -> None:
        pass

    def summary(self, values: dict) -> None:
        pass

    def close(self) -> None:
        pass


def init_distributed(device: torch.device) -> tuple[torch.device, int, int]:
    """Join the process group when launched by ``torchrun`` (``WORLD_SIZE`` > 1): NCCL
    with one GPU per process, gloo on the CPU. Returns ``(device, rank, world_size)``."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return device, 0, 1
    if device.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device, dist.get_rank(), world


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--method", required=True)
    parser.add_argument("--prepared", required=True, type=Path)
    parser.add_argument("--features", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--live", required=True, type=Path)
    parser.add_argument("--checkpoint", required=True, type=Path)
    args = parser.parse_args(argv)

    # -- configuration, validated whole before any work ---------------------------------
    params = load_params()
    if args.method not in METHOD_PARAMS:
        raise ParamsError(f"unknown method {args.method!r}; valid names: {list(METHODS)}")
    common = section(params, "train.common", CommonParams)
    ds = build(DatasetTrainParams, entry(params, "train.datasets", args.dataset, "dataset"),
               f"train.datasets.{args.dataset}")
    cfg = build(METHOD_PARAMS[args.method],
                entry(params, f"train.{args.method}", args.dataset, "dataset"),
                f"train.{args.method}.{args.dataset}")
    image, feat = read_feature_params(params, args.dataset)
    device, rank, world = init_distributed(resolve_device(common.device))
    if rank != 0 and args.method not in ("softmax", "dscl_e2e"):
        return  # only the image methods run data-parallel: rank 0 does the rest
    fingerprint = hashlib.sha256(json.dumps(
        [args.dataset, args.method, asdict(common), asdict(ds), asdict(cfg), asdict(image), asdict(feat)],
        sort_keys=True).encode()).hexdigest()

    args.checkpoint.mkdir(parents=True, exist_ok=True)
    write_text(args.checkpoint / "README.txt", CHECKPOINT_NOTE)
    checkpointer = Checkpointer(args.checkpoint / "state.pt", fingerprint, common.checkpoint_every)
    resuming = checkpointer.load() is not None
    info = json.loads((args.features / "info.json").read_text())
    train_labels = np.load(args.features / "train_labels.npy")
    pool = training_pool(train_labels, ds.class_subsample, common.seed)
    n_classes = len(np.unique(train_labels[pool]))
    dim = ds.embedding_dim or n_classes
    record = {"method": args.method, "dataset": args.dataset, "backbone": feat.backbone,
              "feature_dim": info["feature_dim"], "embedding_dim": dim}
    log = LiveLog(args.live, resume=resuming) if rank == 0 else NoLog()

    # -- training -----------------------------------------------------------------------
    if args.method == "vanilla":
        record.update(kind="features", embedding_dim=info["feature_dim"])
        state = None
    elif args.method == "dscl_last":
        head = EmbeddingNet.build(nn.Identity(), info["feature_dim"], dim, seed=common.seed).head
        mirrored = torch.from_numpy(np.load(args.features / "train_mirrored.npy")) if ds.mirror else None
        head = train_last_layer(
            head, torch.from_numpy(np.load(args.features / "train.npy")), mirrored,
            torch.from_numpy(train_labels), pool, cfg.iterations, cfg.batch_size,
            optimizer_config(cfg), common.seed, checkpointer, log, device)
        record.update(kind="head")
        state = head.cpu().state_dict()
    else:
        model = EmbeddingNet.build(
            build_backbone(feat.backbone, feat.weights, seed=common.seed), info["feature_dim"], dim,
            class_ids=torch.from_numpy(np.unique(train_labels[pool])),
            classifier=args.method == "softmax" and dim != n_classes, seed=common.seed)
        split = read_split(args.prepared, "train")
        transform = image_transform(feat, crop_mode=cfg.crop_mode)
        initial = [p.detach().clone() for p in model.backbone.parameters()]

        decoder = BatchDecoder(split, transform, cfg.num_workers, pin_memory=device.type == "cuda")
        objective = "softmax" if args.method == "softmax" else "dscl"
        try:
            model = train_on_images(
                model, decoder, pool, objective, cfg.iterations, cfg.batch_size, cfg.chunk_size,
                optimizer_config(cfg), common.seed, checkpointer, log, device,
                amp=image.amp and device.type == "cuda", mirror=ds.mirror)
        finally:
            decoder.close()
        record.update(kind="full", weights=feat.weights)
        state = {k: v.cpu() for k, v in model.state_dict().items()}
        if initial:  # how far fine-tuning moved the pretrained layers
            moved = sum(float((p.detach().cpu() - q.cpu()).pow(2).sum())
                        for p, q in zip(model.backbone.parameters(), initial)) ** 0.5
            norm = sum(float(q.pow(2).sum()) for q in initial) ** 0.5
            record.update(backbone_relative_change=moved / norm)
            log.summary({"backbone_relative_change": moved / norm})
    log.close()
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    if rank != 0:
        return
    with atomic_path(args.out / "model.pt") as tmp:
        torch.save({"record": record, "state_dict": state}, tmp)
    checkpointer.clear()  # completed: the next run starts afresh
    print(f"train@{args.dataset}-{args.method}: wrote {args.out / 'model.pt'}")


if __name__ == "__main__":
    run(main)
