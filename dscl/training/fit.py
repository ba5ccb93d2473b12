"""Training one method of the comparison on one prepared dataset: the library call
behind the train stage.

:func:`train_method` plans the job (validation classes carved, the training pool, the
embedding's size: :class:`~dscl.training.job.TrainingJob`), hands each seed's run to the
strategy of what the method learns (:mod:`dscl.training.strategies`), and returns each
run's state and record (:class:`TrainedRun`). Interrupted, it resumes: each run's
training state is checkpointed, and with several seeds a finished run's result is kept
until every seed has finished.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from dscl import layout
from dscl.atomic import atomic_dir, save_torch, write_text
from dscl.backbones.specs import FeatureConfig, ImageConfig
from dscl.methods import Method
from dscl.numerics import environment
from dscl.objectives import Objective, make_objective
from dscl.training.checkpoint import Checkpointer, code_digest, files_digest
from dscl.training.distributed import rank_and_world
from dscl.training.job import DataSettingError, TrainingJob
from dscl.training.log import LiveLog, NoLog
from dscl.training.options import CommonConfig, DatasetTrainConfig, MethodConfig
from dscl.training.record import MODEL_FORMAT, ModelRecord
from dscl.training.strategies import Strategy, strategy_for

__all__ = ["MODEL_FORMAT", "DataSettingError", "TrainedRun", "save_runs", "train_method"]


CHECKPOINT_NOTE = (
    "The training state of an interrupted run is kept here (state.pt) and resumed by the\n"
    "next run with the same settings; it is removed when training completes.\n"
)


@dataclass(frozen=True)
class TrainedRun:
    """One training run: its seed, the learned state (None when nothing is learned), the
    record saved with it and the objective's own learned parameters where it has some
    (Proxy-Anchor's proxies, as at the last step; they are not needed to embed)."""

    seed: int
    state: dict | None
    record: ModelRecord
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

    ``settings`` is the method's configuration (``train.<method>.<dataset>``); ``common``,
    ``data``, ``image`` and ``features_cfg`` the rest of it; ``prepared`` and ``features``
    the prepared dataset and its cached backbone features; ``live`` the DVCLive folder
    (curves, summary) and ``checkpoint`` the folder of resumable state; ``kmeans`` the
    k-means options of the validation's NMI (the keyword arguments of
    :func:`dscl.scoring.scores.evaluate_embedding`; the evaluation's own, ``seed`` aside).

    Returns the runs in seed order (on processes other than rank 0 under torchrun, the
    runs carry no record worth saving: only rank 0 writes). :class:`DataSettingError`,
    before any output, where the dataset's settings do not fit its data.
    """
    job = TrainingJob.plan(
        dataset=dataset, method=method, settings=settings, common=common, data=data, image=image,
        features_cfg=features_cfg, prepared=prepared, features=features, device=device, kmeans=kmeans,
    )  # fmt: skip
    key = _fingerprint(job)
    checkpoint.mkdir(parents=True, exist_ok=True)
    hold = _hold(checkpoint) if rank_and_world()[0] == 0 else None  # noqa: F841 (held while training)
    strategy = strategy_for(method.learns)
    objective = None if method.objective is None else make_objective(method.objective, settings.loss)
    seeds = settings.seeds or common.seeds
    base = _record(job)  # what every seed's model file says of the method, its data and sizes
    runs = []
    for i, seed in enumerate(seeds):
        run_key = hashlib.sha256(f"{key}/{seed}".encode()).hexdigest()
        saver = Checkpointer(layout.state_file(checkpoint, seed, i == 0), run_key, common.checkpoint_every)
        finished = Checkpointer(layout.done_file(checkpoint, seed), run_key, 1) if len(seeds) > 1 else None
        kept = finished.load() if finished is not None else None
        if kept is None:
            saved = saver.load()
            log = _log(layout.live_dir(live, seed, i == 0), saved)
            kept = _train_seed(job, strategy, objective, base, seed, saver, log)
            if finished is not None and rank_and_world()[0] == 0:
                save_torch(finished.path, {"fingerprint": run_key, **kept})
        record = replace(base, **kept["done"])
        runs.append(TrainedRun(seed, kept["state"], record, kept.get("objective_state")))
    return runs


def _hold(checkpoint: Path):
    """The checkpoint folder's note, written if missing and locked (``flock``) for as long
    as the returned file stays open: a second run on the same folder (an orphan of a
    killed ``dvc repro``, a second ``dvc repro``) stops at once instead of resuming from
    a state the first is still writing. The lock ends with the process, however it ends."""
    import errno
    import fcntl

    note = checkpoint / "README.txt"
    if not note.is_file() or note.read_text(encoding="utf-8") != CHECKPOINT_NOTE:
        write_text(note, CHECKPOINT_NOTE)
    held = open(note, "rb")  # noqa: SIM115 (held open: the lock lives as long as the file)
    try:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        held.close()
        raise OSError(
            errno.EBUSY,
            "another training run is using this checkpoint folder: stop it or let it end",
            str(checkpoint),
        ) from None
    return held


def _log(folder: Path, saved: dict | None):
    """The run's curve logger (rank 0 alone logs), resuming a checkpoint's steps."""
    if rank_and_world()[0] != 0:
        return NoLog()
    return LiveLog(folder, resume_step=saved["iteration"] if saved else None)


def _fingerprint(job: TrainingJob) -> str:
    """What a run's resumable state is valid for: the settings, the code and the data."""
    # how the run is launched does not change the result, and each seed's run has its own
    # key: neither is part of the settings' fingerprint
    shared = {k: v for k, v in asdict(job.common).items() if k not in ("torchrun", "seeds")}
    own = {
        k: v for k, v in asdict(job.settings).items() if k != "seeds" and (k, v) != ("embedding_dim", None)
    }
    data = [job.features, *(p for p in job.prepared.iterdir() if p.is_file())]
    return hashlib.sha256(
        json.dumps(
            [
                job.dataset,
                job.method.name,
                shared,
                asdict(job.data),
                own,  # the settings added since (seeds, a method's own embedding_dim) when unset
                asdict(job.image),
                asdict(job.features_cfg),
                # the code that trains and the data it reads: a run resumed after a change
                # of either would mix the old and the new
                code_digest(),
                files_digest(data),
            ],
            sort_keys=True,
        ).encode()
    ).hexdigest()


def _record(job: TrainingJob) -> ModelRecord:
    """What the model file says of the method, its data and its sizes (the run's outcome
    is added to it)."""
    cfg = job.features_cfg
    return ModelRecord(
        format=MODEL_FORMAT,
        method=job.method.name,
        dataset=job.dataset,
        learns=job.method.learns,
        backbone=cfg.backbone,
        # the decoding of the images it embeds (the backbone's own weights for the layers
        # that were not trained): what dscl.inference needs to embed new photographs
        backbone_weights=cfg.weights,
        resize=cfg.resize,
        crop=cfg.crop,
        feature_dim=job.feature_dim,
        embedding_dim=job.dim,
        selected_on=job.common.selection.split,
        trained_classes=len(job.classes),
        objective=job.method.objective,
        normalized=job.method.normalized,
        validation_classes=0 if job.val_labels is None else len(np.unique(job.val_labels)),
    )


def _train_seed(
    job: TrainingJob,
    strategy: Strategy,
    objective: Objective | None,
    record: ModelRecord,
    seed: int,
    saver,
    log,
) -> dict:
    """One training run with ``seed`` (``record``: the run's model record before training):
    its learned state, what the record says of it (``done``) and its objective's learned
    parameters (or None)."""
    bound = None if objective is None else objective.bind(job.classes, job.dim, seed)
    trained = strategy.train(job, record, seed, saver, log, bound)
    stopper, done = trained.stopper, dict(trained.outcome)
    selected = stopper.best_step if stopper.enabled else done["iterations"]
    done.update(selected_step=selected, environment=environment(job.device))
    # the environment is in the model's record, not in the summary DVC shows as metrics
    summary = {"selected_step": selected, "selected_on": job.common.selection.split}
    if stopper.diverged is not None:  # stopped there; the best state before it is kept
        done.update(diverged_at=stopper.diverged, stopped_by=stopper.stopped_by)
        summary.update(diverged_at=stopper.diverged, stopped_by=stopper.stopped_by)
    if stopper.best_scores is not None:
        summary["selected"] = stopper.best_scores
        done.update(selected_scores=stopper.best_scores)
    log.summary(summary)
    log.close()
    learned = None if bound is None else bound.learned_state()
    return {"state": strategy.state(trained.module), "done": done, "objective_state": learned}


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
            record = json.loads(json.dumps(replace(run.record, seed=run.seed if several else None).to_dict()))
            saved = {"record": record, "state_dict": run.state}
            if run.objective_state is not None:  # e.g. Proxy-Anchor's proxies
                saved["objective_state"] = run.objective_state
            save_torch(layout.model_file(tmp, run.seed, i == 0), saved)
    for path in Path(checkpoint).glob("*.pt"):
        path.unlink()
