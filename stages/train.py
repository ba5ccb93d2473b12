"""Stage train@<dataset>-<method>: learn the embedding.

The methods are those of the registry :data:`dscl.methods.METHODS`:

* ``vanilla``: no training (the embedding is the pretrained backbone's feature);
* ``softmax``: all layers fine-tuned for classification of the training classes;
* ``<objective>_last``: only the last layer learned, on the cached features;
* ``<objective>_e2e``: all trainable layers learned on images (chunked update of
  Section 4.1), where ``<objective>`` is ``dscl`` or a baseline (``triplet``,
  ``lifted``, ``npairs``, ``multisim``).

Writes ``<out>/model.pt``; the training and validation curves go to DVCLive in
``--live``; the resumable state to ``--checkpoint`` (an interrupted run resumes from it).

Model selection (``train.common.selection``): the training classes are split into
validation classes (``train.datasets.<dataset>.validation_classes``, seeded) and the
classes trained on. Every ``validate_every`` iterations, and at step 0, the model embeds
the validation images; the state with the best validation score is the one saved
(early stopping, Section 4.1). The summary records ``selected_step`` and the validation
scores at it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from dscl.atomic import atomic_dir, save_torch, write_text
from dscl.backbones import build_backbone
from dscl.checkpoint import Checkpointer
from dscl.datasets import read_split
from dscl.device import resolve_device
from dscl.images import CROP_MODES, BatchDecoder, ImageDataset, embed_dataset
from dscl.metrics import l2_normalize
from dscl.methods import Method, get_method, make_objective
from dscl.selection import EarlyStopping, SelectionRule, carve_validation, embed_in_chunks, validation_scores
from dscl.training import EmbeddingNet, OptimizerConfig, train_last_layer, train_on_images
from stages.cli import run
from stages.features import image_transform, read_feature_params
from stages.params import ParamsError, build, entry, load_params, section

CHECKPOINT_NOTE = (
    "The training state of an interrupted run is kept here (state.pt) and resumed by the\n"
    "next run with the same settings; it is removed when training completes.\n"
)


@dataclass(frozen=True)
class TorchrunParams:
    """The options of ``torchrun`` that launches the train stage (dvc.yaml unpacks this
    mapping into ``--key value`` flags; ``true`` gives ``--key``, ``false`` nothing).
    One process per GPU (or CPU process group): ``nproc_per_node``; several machines:
    ``standalone: false`` with ``nnodes``, ``node_rank`` or ``rdzv_*`` (README)."""

    standalone: bool = True  # one machine, a free local port for the rendezvous
    nproc_per_node: int = 1
    nnodes: int | str | None = None  # N, or MIN:MAX (elastic)
    node_rank: int | None = None
    rdzv_backend: str | None = None  # c10d
    rdzv_endpoint: str | None = None  # host:port of the rendezvous
    rdzv_id: str | None = None  # the job's name, the same on every node
    master_addr: str | None = None
    master_port: int | None = None
    max_restarts: int | None = None

    def __post_init__(self):
        if self.nproc_per_node < 1:
            raise ValueError(f"nproc_per_node must be >= 1, got {self.nproc_per_node}")
        several = [k for k in ("nnodes", "node_rank", "rdzv_endpoint", "rdzv_id", "master_addr",
                               "master_port") if getattr(self, k) is not None]
        if self.standalone and several:
            raise ValueError(f"standalone: true is for one machine, but {several} are set: "
                             f"set standalone: false to run on several machines")


@dataclass(frozen=True)
class CommonParams:
    # one training run per seed (initialisation, batches, crops); the validation classes
    # and the class pool are drawn once, with the first, so runs differ only in training
    seeds: tuple[int, ...] = (0,)
    device: str = "auto"
    amp: bool = True  # bfloat16 autocast of the training passes on CUDA
    checkpoint_every: int = 10
    selection: SelectionRule = SelectionRule()
    torchrun: TorchrunParams = TorchrunParams()

    def __post_init__(self):
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be a non-empty list of distinct integers, got {list(self.seeds)}")

    @property
    def seed(self) -> int:
        """The first seed: the one of the split (validation classes, class pool)."""
        return self.seeds[0]


CLASS_SAMPLING = ("per_batch", "once")


@dataclass(frozen=True)
class DatasetTrainParams:
    embedding_dim: int | None = None  # null: the number of training classes (the paper)
    class_subsample: int | None = None  # batches drawn among this many random classes (SOP: 512)
    class_sampling: str = "per_batch"  # per_batch: new classes every batch; once: fixed classes
    mirror: bool = True  # random horizontal mirroring of training images
    validation_classes: int = 0  # carved from the training classes (seeded)

    def __post_init__(self):
        if self.class_sampling not in CLASS_SAMPLING:
            raise ValueError(f"class_sampling must be one of {list(CLASS_SAMPLING)}, "
                             f"got {self.class_sampling!r}")
        if self.validation_classes < 0:
            raise ValueError(f"validation_classes must be >= 0, got {self.validation_classes}")


@dataclass(frozen=True)
class LastLayerParams:
    iterations: int = 200
    batch_size: int = 1260
    optimizer: str = "sgd"
    lr: float = 1.0
    momentum: float = 0.9
    weight_decay: float = 0.0
    validate_every: int = 10  # iterations between validations (and at step 0)
    loss: dict[str, float] = field(default_factory=dict)  # the objective's settings

    def __post_init__(self):
        optimizer_config(self)  # refuses an unknown optimizer or a bad learning rate
        if self.iterations < 0 or self.batch_size < 2:
            raise ValueError("iterations must be >= 0 and batch_size >= 2")
        if self.validate_every < 1:
            raise ValueError(f"validate_every must be >= 1, got {self.validate_every}")


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
    validate_every: int = 10  # iterations between validations (and at step 0)
    loss: dict[str, float] = field(default_factory=dict)  # the objective's settings

    def __post_init__(self):
        optimizer_config(self)
        if self.validate_every < 1:
            raise ValueError(f"validate_every must be >= 1, got {self.validate_every}")
        if self.backbone_lr is not None and not self.backbone_lr > 0:
            raise ValueError(f"backbone_lr must be positive (or null), got {self.backbone_lr}")
        if self.iterations < 0 or self.batch_size < 2 or self.chunk_size < 1:
            raise ValueError("iterations must be >= 0, batch_size >= 2 and chunk_size >= 1")
        if self.crop_mode not in CROP_MODES:
            raise ValueError(f"crop_mode must be one of {list(CROP_MODES)}, got {self.crop_mode!r}")


@dataclass(frozen=True)
class SoftmaxParams(ImageTrainParams):
    # pooled: the test embedding is the fine-tuned pooled feature ("GoogLeNet features
    # fine-tuned for classification", Section 4.2); logits: the class scores
    embedding: str = "pooled"

    def __post_init__(self):
        super().__post_init__()
        if self.loss:
            raise ValueError(f"softmax has no loss settings, got {sorted(self.loss)}")
        if self.embedding not in SOFTMAX_EMBEDDINGS:
            raise ValueError(f"embedding must be one of {list(SOFTMAX_EMBEDDINGS)}, got {self.embedding!r}")


SOFTMAX_EMBEDDINGS = ("pooled", "logits")


@dataclass(frozen=True)
class VanillaParams:
    """The vanilla method has nothing to learn."""


def method_params(method: Method) -> type:
    """The dataclass of ``train.<method>.<dataset>``."""
    if method.learns == "nothing":
        return VanillaParams
    if method.learns == "last_layer":
        return LastLayerParams
    return SoftmaxParams if method.objective == "softmax" else ImageTrainParams


def read_method_params(params: dict, name: str, dataset: str):
    """The settings of method ``name`` on ``dataset`` and its objective (None for vanilla
    and softmax), checked: an unknown method or loss setting names the valid ones."""
    try:
        method = get_method(name)
    except ValueError as err:
        raise ParamsError(f"params.yaml: {err}") from None
    where = f"train.{name}.{dataset}"
    cfg = build(method_params(method), entry(params, f"train.{name}", dataset, "dataset"), where)
    objective = None
    if method.objective not in (None, "softmax"):
        try:
            objective = make_objective(method.objective, cfg.loss)
        except ValueError as err:
            raise ParamsError(f"params.yaml: {where}.loss: {err}") from None
    return method, cfg, objective


def optimizer_config(p) -> OptimizerConfig:
    return OptimizerConfig(p.optimizer, p.lr, p.momentum, p.weight_decay,
                           backbone_lr=getattr(p, "backbone_lr", None))


def training_pool(labels: np.ndarray, candidates: np.ndarray, class_subsample: int | None,
                  class_sampling: str, seed: int) -> tuple[np.ndarray, int | None]:
    """The examples training draws from (indices into ``labels``, among ``candidates``)
    and the number of classes per batch (None: batches drawn from the whole pool).

    ``class_subsample`` with "per_batch": every batch draws that many classes anew;
    with "once": that many classes are drawn once and only they are trained on.
    """
    classes = np.unique(labels[candidates])
    if class_subsample is None:
        return candidates, None
    if not 2 <= class_subsample <= len(classes):
        raise ParamsError(
            f"class_subsample must be in [2, {len(classes)}] (the training classes less the "
            f"validation classes), got {class_subsample}"
        )
    if class_sampling == "per_batch":
        return candidates, class_subsample
    chosen = np.sort(np.random.default_rng(seed).choice(classes, class_subsample, replace=False))
    return candidates[np.isin(labels[candidates], chosen)], None


class LiveLog:
    """Training curves through DVCLive (``dvcyaml=False``: dvc.yaml declares them).

    A run resumed from the checkpoint of step ``resume_step`` first drops the curve
    points logged after it (by the interrupted run), so no step is written twice.
    """

    def __init__(self, directory: Path, resume_step: int | None):
        from dvclive import Live

        if resume_step is not None:
            truncate_curves(Path(directory) / "plots" / "metrics", resume_step)
        self.live = Live(str(directory), dvcyaml=False, save_dvc_exp=False,
                         resume=resume_step is not None)

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


def truncate_curves(folder: Path, last_step: int) -> None:
    """Drop the rows after ``last_step`` from every DVCLive ``.tsv`` curve in ``folder``."""
    for curve in sorted(folder.rglob("*.tsv")) if folder.is_dir() else []:
        lines = curve.read_text().splitlines()
        if not lines:
            continue
        step = lines[0].split("\t").index("step")
        kept = [lines[0]] + [ln for ln in lines[1:] if int(ln.split("\t")[step]) <= last_step]
        if len(kept) < len(lines):
            write_text(curve, "\n".join(kept) + "\n")


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


def check_selection(common: CommonParams, ds: DatasetTrainParams, dataset: str) -> None:
    if common.selection.split == "validation" and ds.validation_classes < 2:
        raise ParamsError(
            f"params.yaml: train.common.selection.split is 'validation' but "
            f"train.datasets.{dataset}.validation_classes is {ds.validation_classes}: "
            f"set it to 2 or more, or set the split to 'none'")


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
    method, cfg, objective = read_method_params(params, args.method, args.dataset)
    common = section(params, "train.common", CommonParams)
    ds = build(DatasetTrainParams, entry(params, "train.datasets", args.dataset, "dataset"),
               f"train.datasets.{args.dataset}")
    image, feat = read_feature_params(params, args.dataset)
    rule = common.selection
    check_selection(common, ds, args.dataset)
    device, rank, world = init_distributed(resolve_device(common.device))
    if world > 1 and method.learns != "all_layers":
        # only the image methods run data-parallel: rank 0 does the rest, alone
        dist.destroy_process_group()
        if rank != 0:
            return
        world = 1
    # how the run is launched does not change the result, and each seed's run has its own
    # key: neither is part of the settings' fingerprint
    settings = {k: v for k, v in asdict(common).items() if k not in ("torchrun", "seeds")}
    fingerprint = hashlib.sha256(json.dumps(
        [args.dataset, args.method, settings, asdict(ds), asdict(cfg), asdict(image), asdict(feat)],
        sort_keys=True).encode()).hexdigest()

    info = json.loads((args.features / "info.json").read_text())
    train_labels = np.load(args.features / "train_labels.npy")

    # -- validation classes, carved from the training classes (checked before any output) --
    if rule.split == "validation":
        try:
            candidates, val_idx = carve_validation(train_labels, ds.validation_classes, common.seed)
        except ValueError as err:
            raise ParamsError(f"params.yaml: train.datasets.{args.dataset}.validation_classes: "
                              f"{err}") from None
        val_labels = train_labels[val_idx]
    else:
        candidates, val_idx = np.arange(len(train_labels)), None
        val_labels = np.load(args.features / "test_labels.npy") if rule.split == "test" else None
    pool, classes_per_batch = training_pool(train_labels, candidates, ds.class_subsample,
                                            ds.class_sampling, common.seed)
    n_classes = len(np.unique(train_labels[pool]))
    dim = ds.embedding_dim or n_classes
    record = {"method": args.method, "dataset": args.dataset, "backbone": feat.backbone,
              "feature_dim": info["feature_dim"], "embedding_dim": dim,
              "selected_on": rule.split, "trained_classes": n_classes,
              "objective": method.objective, "normalized": method.normalized,
              "validation_classes": 0 if val_labels is None else len(np.unique(val_labels))}
    args.checkpoint.mkdir(parents=True, exist_ok=True)
    write_text(args.checkpoint / "README.txt", CHECKPOINT_NOTE)

    def cached(name: str) -> np.ndarray:
        """The validation rows of a cached feature array (centre crops)."""
        if rule.split == "test":
            return np.load(args.features / "test.npy")
        return np.load(args.features / f"{name}.npy")[val_idx]

    def scores_of(emb: np.ndarray) -> dict:
        """Validation scores of an embedding, l2-normalised as its objective measures it."""
        return validation_scores(l2_normalize(emb) if method.normalized else emb, val_labels, common.seed)

    def train_run(seed: int, checkpointer: Checkpointer, log) -> tuple[dict | None, dict]:
        """One training run with ``seed``: its state and what the record says of it."""
        done: dict = {}
        if method.learns == "nothing":
            done.update(kind="features", embedding_dim=info["feature_dim"], iterations=0)
            state = None
            if val_labels is not None:  # the pretrained feature's validation scores (step 0)
                scores = validation_scores(cached("train"), val_labels, common.seed)
                stopper = EarlyStopping(lambda _: scores, 1, rule)
                log(0, stopper(0, nn.Identity()))
            else:
                stopper = EarlyStopping(None, 0, rule)
        elif method.learns == "last_layer":
            head = EmbeddingNet.build(nn.Identity(), info["feature_dim"], dim, seed=seed).head
            mirrored = torch.from_numpy(np.load(args.features / "train_mirrored.npy")) if ds.mirror else None
            validate = None
            if val_labels is not None:
                val_feats = torch.from_numpy(cached("train"))

                def validate_layer(layer):
                    return scores_of(embed_in_chunks(lambda x: layer(x.to(device)), val_feats))
                validate = validate_layer
            stopper = EarlyStopping(validate, cfg.validate_every, rule)
            w0 = float(head.weight.detach().norm())
            head = train_last_layer(
                head, torch.from_numpy(np.load(args.features / "train.npy")), mirrored,
                torch.from_numpy(train_labels), pool, cfg.iterations, cfg.batch_size,
                optimizer_config(cfg), seed, checkpointer, log, device,
                stopper=stopper, classes_per_batch=classes_per_batch, objective=objective)
            done.update(kind="head", iterations=cfg.iterations)
            state = head.cpu().state_dict()
            # the loss is invariant to the layer's scale: how much the step inflated |W|
            log.summary({"head_norm_ratio": float(head.weight.detach().norm()) / w0})
        else:
            model = EmbeddingNet.build(
                build_backbone(feat.backbone, feat.weights, seed=seed), info["feature_dim"], dim,
                class_ids=torch.from_numpy(np.unique(train_labels[pool])),
                classifier=args.method == "softmax" and dim != n_classes, seed=seed)
            split = read_split(args.prepared, "train")
            transform = image_transform(feat, crop_mode=cfg.crop_mode)
            initial = [p.detach().clone() for p in model.backbone.parameters()]
            w0 = float(model.head.weight.detach().norm())
            pooled = args.method == "softmax" and cfg.embedding == "pooled"
            validate = None
            if val_labels is not None:
                val_split = read_split(args.prepared, "test") if rule.split == "test" else split
                val_set = ImageDataset(val_split, image_transform(feat), indices=val_idx)

                def validate_net(net):
                    return scores_of(embed_dataset(net.backbone if pooled else net, val_set, image.batch_size,
                                                   image.num_workers, device, image.amp, "validate"))
                validate = validate_net
            stopper = EarlyStopping(validate, cfg.validate_every, rule)

            decoder = BatchDecoder(split, transform, cfg.num_workers, pin_memory=device.type == "cuda")
            try:
                model = train_on_images(
                    model, decoder, pool, objective or method.objective, cfg.iterations, cfg.batch_size,
                    cfg.chunk_size, optimizer_config(cfg), seed, checkpointer, log, device,
                    amp=common.amp and device.type == "cuda", mirror=ds.mirror, stopper=stopper,
                    all_labels=train_labels, classes_per_batch=classes_per_batch)
            finally:
                decoder.close()
            done.update(kind="full", weights=feat.weights, iterations=cfg.iterations,
                        embedding="pooled" if pooled else "head")
            state = {k: v.cpu() for k, v in model.state_dict().items()}
            log.summary({"head_norm_ratio": float(model.head.weight.detach().norm()) / w0})
            if initial:  # how far fine-tuning moved the pretrained layers
                moved = sum(float((p.detach().cpu() - q.cpu()).pow(2).sum())
                            for p, q in zip(model.backbone.parameters(), initial)) ** 0.5
                norm = sum(float(q.pow(2).sum()) for q in initial) ** 0.5
                done.update(backbone_relative_change=moved / norm)
                log.summary({"backbone_relative_change": moved / norm})
        selected = stopper.best_step if stopper.enabled else done["iterations"]
        done.update(selected_step=selected)
        summary = {"selected_step": selected, "selected_on": rule.split}
        if stopper.best_scores is not None:
            summary["selected"] = stopper.best_scores
            done.update(selected_scores=stopper.best_scores)
        log.summary(summary)
        log.close()
        return state, done

    # -- training: one run per seed ---------------------------------------------------------
    # The first seed's curves are the stage's (``--live``); another seed's go to
    # <live>/plots/metrics/seed-<s>/, its checkpoint to <checkpoint>/state-seed-<s>.pt, and a
    # finished run's result to <checkpoint>/done-seed-<s>.pt, so an interrupted multi-seed
    # run resumes at the run it stopped in.
    several = len(common.seeds) > 1
    results = []
    for i, seed in enumerate(common.seeds):
        key = hashlib.sha256(f"{fingerprint}/{seed}".encode()).hexdigest()
        name = "state.pt" if i == 0 else f"state-seed-{seed}.pt"
        checkpointer = Checkpointer(args.checkpoint / name, key, common.checkpoint_every)
        finished = Checkpointer(args.checkpoint / f"done-seed-{seed}.pt", key, 1) if several else None
        kept = finished.load() if finished is not None else None
        if kept is not None:
            results.append((seed, kept["state"], kept["done"]))
            continue
        saved = checkpointer.load()
        live = args.live if i == 0 else args.live / "plots" / "metrics" / f"seed-{seed}"
        log = LiveLog(live, resume_step=saved["iteration"] if saved else None) if rank == 0 else NoLog()
        state, done = train_run(seed, checkpointer, log)
        if several and rank == 0:
            save_torch(finished.path, {"fingerprint": key, "state": state, "done": done})
        results.append((seed, state, done))
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    if rank != 0:
        return
    with atomic_dir(args.out) as tmp:
        for i, (seed, state, done) in enumerate(results):
            run_record = {**record, **done, **({"seed": seed} if several else {})}
            save_torch(tmp / ("model.pt" if i == 0 else f"seed-{seed}.pt"),
                       {"record": run_record, "state_dict": state})
    for path in args.checkpoint.glob("*.pt"):  # completed: the next run starts afresh
        path.unlink()
    steps = ", ".join(str(done["selected_step"]) for _, _, done in results)
    print(f"train@{args.dataset}-{args.method}: selected step {steps} (on {rule.split}); "
          f"wrote {args.out}")


if __name__ == "__main__":
    run(main)
