"""Training one method of the comparison on one prepared dataset: the library call
behind the train stage.

:func:`train_method` carves the validation classes, builds the model of what the method
learns (``nothing``, the ``last_layer`` on cached features, or ``all_layers`` on
images), trains one run per seed with model selection, checkpoints and curves, and
returns each run's state and record (:class:`TrainedRun`). Interrupted, it resumes: each
run's training state is checkpointed, and with several seeds a finished run's result is
kept until every seed has finished.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dscl import layout
from dscl.atomic import atomic_dir, save_torch, write_text
from dscl.backbones import build_backbone
from dscl.config import (
    CommonConfig,
    DatasetTrainConfig,
    FeatureConfig,
    ImageConfig,
    MethodConfig,
)
from dscl.datasets import read_split
from dscl.evaluation.metrics import l2_normalize
from dscl.evaluation.selection import EarlyStopping, carve_validation, validation_scores
from dscl.images import ImageDataset, embed_dataset, make_decoder, transform_for
from dscl.methods import Method
from dscl.numerics import environment
from dscl.objectives import make_objective
from dscl.training.checkpoint import Checkpointer, code_digest, files_digest
from dscl.training.distributed import rank_and_world
from dscl.training.guard import NonFiniteError
from dscl.training.log import LiveLog, NoLog
from dscl.training.loops import train_last_layer, train_on_images
from dscl.training.model import MODEL_FORMAT, EmbeddingNet, embed_in_chunks
from dscl.training.sampling import training_pool

__all__ = ["MODEL_FORMAT", "DataSettingError", "TrainedRun", "save_runs", "train_method"]


CHECKPOINT_NOTE = (
    "The training state of an interrupted run is kept here (state.pt) and resumed by the\n"
    "next run with the same settings; it is removed when training completes.\n"
)


class DataSettingError(ValueError):
    """The dataset's training settings do not fit its data (too many validation classes,
    a class subsample larger than the classes left): ``key`` names the setting of
    ``train.datasets.<dataset>`` it concerns (None: the section). The train stage turns
    it into the pipeline's message, with the key in ``params.yaml``."""

    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.key = key

    def where(self, dataset: str) -> str:
        """The setting's key in ``params.yaml``."""
        return f"train.datasets.{dataset}" + (f".{self.key}" if self.key else "")


@dataclass(frozen=True)
class TrainedRun:
    """One training run: its seed, the learned state (None when nothing is learned), the
    record saved with it (method, dataset, backbone, sizes, the step selected, ...) and the
    objective's own learned parameters where it has some (Proxy-Anchor's proxies, as at
    the last step; they are not needed to embed)."""

    seed: int
    state: dict | None
    record: dict
    objective_state: dict | None = None


def train_method(
    *,
    dataset: str,
    method: Method,
    settings: MethodConfig,
    common: CommonConfig,
    data: DatasetTrainConfig,
    image: ImageConfig,
    features_cfg: FeatureConfig,
    prepared: Path,
    features: Path,
    live: Path,
    checkpoint: Path,
    device: torch.device,
    kmeans: dict | None = None,
) -> list[TrainedRun]:
    """Train ``method`` on ``dataset`` once per seed: the method's own ``seeds`` where it
    sets them, otherwise ``common.seeds`` (validation classes are carved with
    ``common.seed`` either way).

    Parameters
    ----------
    dataset : str
    method : Method
    settings : the method's configuration (``train.<method>.<dataset>``)
    common, data, image, features_cfg : the rest of its configuration
    prepared, features : Path
        The prepared dataset and its cached backbone features.
    live, checkpoint : Path
        The DVCLive folder (curves, summary) and the folder of resumable state.
    device : torch.device
    kmeans : dict, optional
        The k-means options of the validation's NMI (the keyword arguments of
        :func:`dscl.evaluation.metrics.evaluate_embedding`; the evaluation's own, ``seed`` aside).

    Returns
    -------
    list of TrainedRun, in seed order (on processes other than rank 0 under torchrun,
    the runs carry no record worth saving: only rank 0 writes).
    """
    rank, _ = rank_and_world()
    rule = common.selection
    kmeans_options = {k: v for k, v in (kmeans or {}).items() if k != "seed"}
    objective = (
        None if method.objective in (None, "softmax") else make_objective(method.objective, settings.loss)
    )
    # how the run is launched does not change the result, and each seed's run has its own
    # key: neither is part of the settings' fingerprint
    shared = {k: v for k, v in asdict(common).items() if k not in ("torchrun", "seeds")}
    fingerprint = hashlib.sha256(
        json.dumps(
            [
                dataset,
                method.name,
                shared,
                asdict(data),
                # the settings added since (seeds, a method's own embedding_dim) when unset
                {
                    k: v
                    for k, v in asdict(settings).items()
                    if k != "seeds" and (k, v) != ("embedding_dim", None)
                },
                asdict(image),
                asdict(features_cfg),
                # the code that trains and the data it reads: a run resumed after a change
                # of either would mix the old and the new
                code_digest(),
                files_digest([features, *(p for p in prepared.iterdir() if p.is_file())]),
            ],
            sort_keys=True,
        ).encode()
    ).hexdigest()

    info = json.loads(layout.info_file(features).read_text())
    train_labels = np.load(layout.labels_file(features, "train"))
    # -- validation classes, carved from the training classes (checked before any output) --
    if rule.split == "validation":
        try:
            candidates, val_idx = carve_validation(train_labels, data.validation_classes, common.seed)
        except ValueError as err:
            raise DataSettingError(str(err), "validation_classes") from None
        val_labels = train_labels[val_idx]
    else:
        candidates, val_idx = np.arange(len(train_labels)), None
        val_labels = np.load(layout.labels_file(features, "test")) if rule.split == "test" else None
    try:
        pool, classes_per_batch = training_pool(
            train_labels, candidates, data.class_subsample, data.class_sampling, common.seed
        )
    except ValueError as err:
        raise DataSettingError(str(err)) from None
    n_classes = len(np.unique(train_labels[pool]))
    dim = getattr(settings, "embedding_dim", None) or data.embedding_dim or n_classes
    record = {
        "format": MODEL_FORMAT,
        "method": method.name,
        "dataset": dataset,
        "learns": method.learns,
        "backbone": features_cfg.backbone,
        # the decoding of the images it embeds (the backbone's own weights for the layers
        # that were not trained): what dscl.inference needs to embed new photographs
        "backbone_weights": features_cfg.weights,
        "resize": features_cfg.resize,
        "crop": features_cfg.crop,
        "feature_dim": info["feature_dim"],
        "embedding_dim": dim,
        "selected_on": rule.split,
        "trained_classes": n_classes,
        "objective": method.objective,
        "normalized": method.normalized,
        "validation_classes": 0 if val_labels is None else len(np.unique(val_labels)),
    }
    checkpoint.mkdir(parents=True, exist_ok=True)
    write_text(checkpoint / "README.txt", CHECKPOINT_NOTE)

    def cached(name: str) -> np.ndarray:
        """The validation rows of a cached feature array (centre crops)."""
        if rule.split == "test":
            return np.load(layout.feature_file(features, "test"))
        return np.load(features / f"{name}.npy")[val_idx]

    def scores_of(emb: np.ndarray) -> dict:
        """Validation scores of an embedding, l2-normalised as its objective measures it
        (a non-finite embedding: the run diverged)."""
        if not np.isfinite(emb).all():
            raise NonFiniteError("validation embedding")
        return validation_scores(
            l2_normalize(emb) if method.normalized else emb, val_labels, common.seed, **kmeans_options
        )

    pooled = method.objective == "softmax" and getattr(settings, "embedding", None) == "pooled"

    classes = np.unique(train_labels[pool])

    def train_head(seed: int, checkpointer: Checkpointer, log, objective) -> tuple[nn.Module, EarlyStopping]:
        """The last layer, on the cached features."""
        head = EmbeddingNet.build(nn.Identity(), info["feature_dim"], dim, seed=seed).head
        mirrored = (
            torch.from_numpy(np.load(layout.feature_file(features, "train_mirrored")))
            if data.mirror
            else None
        )
        validate = None
        if val_labels is not None:
            val_feats = torch.from_numpy(cached("train"))

            def validate(layer):
                return scores_of(embed_in_chunks(lambda x: layer(x.to(device)), val_feats))

        stopper = EarlyStopping(validate, settings.validate_every, rule)
        w0 = float(head.weight.detach().norm())
        head = train_last_layer(
            head,
            torch.from_numpy(np.load(layout.feature_file(features, "train"))),
            torch.from_numpy(train_labels),
            pool,
            objective=objective,
            iterations=settings.iterations,
            batch_size=settings.batch_size,
            optim=settings.optimizer_config(),
            seed=seed,
            device=device,
            features_mirrored=mirrored,
            classes_per_batch=classes_per_batch,
            checkpointer=checkpointer,
            log=log,
            stopper=stopper,
        )
        # the loss is invariant to the layer's scale: how much the step inflated |W|
        log.summary({"head_norm_ratio": float(head.weight.detach().norm()) / w0})
        return head, stopper

    def train_network(
        seed: int, checkpointer: Checkpointer, log, objective
    ) -> tuple[EmbeddingNet, EarlyStopping, float | None]:
        """All trainable layers, on images; also how far the pretrained layers moved."""
        model = EmbeddingNet.build(
            build_backbone(features_cfg.backbone, features_cfg.weights, seed=seed),
            info["feature_dim"],
            dim,
            class_ids=torch.from_numpy(classes),
            classifier=method.objective == "softmax" and dim != n_classes,
            seed=seed,
        )
        split = read_split(prepared, "train")
        initial = [p.detach().clone() for p in model.backbone.parameters()]
        w0 = float(model.head.weight.detach().norm())
        validate = None
        if val_labels is not None:
            val_split = read_split(prepared, "test") if rule.split == "test" else split
            centre = transform_for(features_cfg.backbone, features_cfg.resize, features_cfg.crop)
            val_set = ImageDataset(val_split, centre, indices=val_idx)

            def validate(net):
                return scores_of(
                    embed_dataset(
                        net.backbone if pooled else net,
                        val_set,
                        image.batch_size,
                        image.num_workers,
                        device,
                        image.amp,
                        "validate",
                        decode=image.decode,
                    )
                )

        stopper = EarlyStopping(validate, settings.validate_every, rule)
        transform = transform_for(
            features_cfg.backbone, features_cfg.resize, features_cfg.crop, crop_mode=settings.crop_mode
        )
        decoder = make_decoder(split, transform, settings.num_workers, device, image.decode)
        try:
            model = train_on_images(
                model,
                decoder,
                pool,
                objective=objective or "softmax",
                iterations=settings.iterations,
                batch_size=settings.batch_size,
                chunk_size=settings.chunk_size,
                optim=settings.optimizer_config(),
                seed=seed,
                device=device,
                amp=common.amp and device.type == "cuda",
                mirror=data.mirror,
                all_labels=train_labels,
                classes_per_batch=classes_per_batch,
                checkpointer=checkpointer,
                log=log,
                stopper=stopper,
            )
        finally:
            decoder.close()
        log.summary({"head_norm_ratio": float(model.head.weight.detach().norm()) / w0})
        if not initial:  # nothing pretrained (the pixels backbone)
            return model, stopper, None
        change = (
            sum(
                float((p.detach().cpu() - q.cpu()).pow(2).sum())
                for p, q in zip(model.backbone.parameters(), initial)
            )
            ** 0.5
        )
        moved = change / sum(float(q.pow(2).sum()) for q in initial) ** 0.5
        log.summary({"backbone_relative_change": moved})
        return model, stopper, moved

    def run(seed: int, checkpointer: Checkpointer, log) -> tuple[dict | None, dict, dict | None]:
        """One training run with ``seed``: its state, what the record says of it, and its
        objective's learned parameters (or None)."""
        done: dict = {}
        bound = None if objective is None else objective.bind(classes, dim, seed)
        if method.learns == "nothing":
            done.update(embedding_dim=info["feature_dim"], iterations=0)
            state, stopper = None, EarlyStopping(None, 0, rule)
            if val_labels is not None:  # the pretrained feature's validation scores (step 0)
                scores = validation_scores(cached("train"), val_labels, common.seed, **kmeans_options)
                stopper = EarlyStopping(lambda _: scores, 1, rule)
                log(0, stopper(0, nn.Identity()))
        elif method.learns == "last_layer":
            head, stopper = train_head(seed, checkpointer, log, bound)
            state = head.cpu().state_dict()
            done.update(iterations=settings.iterations)
        else:
            model, stopper, moved = train_network(seed, checkpointer, log, bound)
            state = {k: v.cpu() for k, v in model.state_dict().items()}
            done.update(
                weights=features_cfg.weights,
                iterations=settings.iterations,
                embedding="pooled" if pooled else "head",
            )
            if moved is not None:
                done.update(backbone_relative_change=moved)
        selected = stopper.best_step if stopper.enabled else done["iterations"]
        done.update(selected_step=selected, environment=environment(device))
        summary = {"selected_step": selected, "selected_on": rule.split, "environment": done["environment"]}
        if stopper.diverged is not None:  # stopped there; the best state before it is kept
            done.update(diverged_at=stopper.diverged)
            summary["diverged_at"] = stopper.diverged
        if stopper.best_scores is not None:
            summary["selected"] = stopper.best_scores
            done.update(selected_scores=stopper.best_scores)
        log.summary(summary)
        log.close()
        learned = None if bound is None or bound.module is None else bound.module.cpu().state_dict()
        return state, done, learned

    # -- one run per seed: the first seed's curves are the stage's; see dscl.layout -------
    seeds = getattr(settings, "seeds", None) or common.seeds
    several = len(seeds) > 1
    runs = []
    for i, seed in enumerate(seeds):
        key = hashlib.sha256(f"{fingerprint}/{seed}".encode()).hexdigest()
        checkpointer = Checkpointer(layout.state_file(checkpoint, seed, i == 0), key, common.checkpoint_every)
        finished = Checkpointer(layout.done_file(checkpoint, seed), key, 1) if several else None
        kept = finished.load() if finished is not None else None
        if kept is not None:
            runs.append(
                TrainedRun(seed, kept["state"], {**record, **kept["done"]}, kept.get("objective_state"))
            )
            continue
        saved = checkpointer.load()
        live_dir = layout.live_dir(live, seed, i == 0)
        log = LiveLog(live_dir, resume_step=saved["iteration"] if saved else None) if rank == 0 else NoLog()
        state, done, learned = run(seed, checkpointer, log)
        if several and rank == 0:
            kept = {"fingerprint": key, "state": state, "done": done}
            save_torch(finished.path, kept if learned is None else {**kept, "objective_state": learned})
        runs.append(TrainedRun(seed, state, {**record, **done}, learned))
    return runs


def save_runs(out: Path, runs: list[TrainedRun], checkpoint: Path) -> None:
    """Write each run's model file into ``out`` (atomically: all or nothing), then clear
    the checkpoints (completed: the next run starts afresh).

    The record is written as the plain data it is (through JSON), so that the file's
    bytes depend on its values alone: a pickle shares an object met twice, and a string
    of a fresh run can be one torch also uses (the device's name) where the same string
    read back from a resumed run's checkpoint is not, which changed the bytes."""
    several = len(runs) > 1
    with atomic_dir(out) as tmp:
        for i, run in enumerate(runs):
            record = json.loads(json.dumps({**run.record, **({"seed": run.seed} if several else {})}))
            saved = {"record": record, "state_dict": run.state}
            if run.objective_state is not None:  # e.g. Proxy-Anchor's proxies
                saved["objective_state"] = run.objective_state
            save_torch(layout.model_file(tmp, run.seed, i == 0), saved)
    for path in Path(checkpoint).glob("*.pt"):
        path.unlink()
