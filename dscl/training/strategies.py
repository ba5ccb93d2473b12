"""One strategy per kind of learning: what a method learns decided in one place.

A method learns ``nothing`` (the pretrained feature is the embedding), the
``last_layer`` (a linear layer on the cached features) or ``all_layers`` (the network on
images, with the chunked update of Section 4.1 of [1]). Its :class:`Strategy` says how
its network is built from the model record, saved, loaded and embedded (the
:class:`~dscl.training.kinds.Kind` it extends: the one builder, used by training, the
embed stage and :mod:`dscl.inference`) and how it is trained (:meth:`Strategy.train`, one
run with one seed, on a :class:`~dscl.training.job.TrainingJob`).

References
----------
.. [1] Law, Urtasun, Zemel. Deep Spectral Clustering Learning. ICML 2017.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from dscl import layout
from dscl.datasets import read_split
from dscl.images import ImageDataset, embed_dataset, make_decoder, transform_for
from dscl.scoring.selection import EarlyStopping
from dscl.training.job import TrainingJob
from dscl.training.kinds import AllLayersNetwork, Kind, LastLayerNetwork, PretrainedFeature, kind_for
from dscl.training.loops import train_last_layer, train_on_images
from dscl.training.model import embed_in_chunks
from dscl.training.record import ModelRecord

__all__ = ["AllLayers", "LastLayer", "Pretrained", "Strategy", "Trained", "strategy_for"]


@dataclass(frozen=True)
class Trained:
    """What a strategy's training gives: the learned module (None: nothing learned), its
    model selection, and what the record says of the run (the fields of
    :class:`~dscl.training.record.ModelRecord` it sets)."""

    module: nn.Module | None
    stopper: EarlyStopping
    outcome: dict


class Strategy(Kind):
    """A kind of learning, and how it trains."""

    def train(
        self, job: TrainingJob, record: ModelRecord, seed: int, checkpointer, log, objective
    ) -> Trained:
        """One training run with ``seed`` (``objective`` bound to the run's classes)."""
        raise NotImplementedError


class Pretrained(Strategy, PretrainedFeature):
    """Nothing to train: the pretrained feature is validated once (step 0)."""

    def train(self, job, record, seed, checkpointer, log, objective):
        stopper = EarlyStopping(None, 0, job.common.selection)
        if job.val_labels is not None:  # the pretrained feature's validation scores (step 0)
            scores = job.scores(job.cached("train"))
            stopper = EarlyStopping(lambda _: scores, 1, job.common.selection)
            log(0, stopper(0, nn.Identity()))
        return Trained(None, stopper, {"embedding_dim": job.feature_dim, "iterations": 0})


class LastLayer(Strategy, LastLayerNetwork):
    """The last layer trained on the cached features (:func:`~dscl.training.loops.train_last_layer`)."""

    def train(self, job, record, seed, checkpointer, log, objective):
        head = self.build(record, seed=seed)
        validate = None
        if job.val_labels is not None:
            val_feats = torch.from_numpy(job.cached("train"))

            def validate(layer):
                return job.scores(embed_in_chunks(lambda x: layer(x.to(job.device)), val_feats))

        options = job.loop_options(seed, checkpointer, log, job.stopper(validate))
        mirrored = layout.feature_file(job.features, "train_mirrored") if job.data.mirror else None
        w0 = float(head.weight.detach().norm())
        head = train_last_layer(
            head,
            torch.from_numpy(np.load(layout.feature_file(job.features, "train"))),
            torch.from_numpy(job.train_labels),
            job.pool,
            objective,
            options,
            features_mirrored=None if mirrored is None else torch.from_numpy(np.load(mirrored)),
        )
        # the loss is invariant to the layer's scale: how much the step inflated |W|
        log.summary({"head_norm_ratio": float(head.weight.detach().norm()) / w0})
        return Trained(head, options.stopper, {"iterations": job.settings.iterations})


class AllLayers(Strategy, AllLayersNetwork):
    """All layers trained on images (:func:`~dscl.training.loops.train_on_images`)."""

    def train(self, job, record, seed, checkpointer, log, objective):
        model = self.build(record, weights=job.features_cfg.weights, seed=seed)
        model.class_ids = torch.from_numpy(job.classes)  # the classes it was trained on
        split = read_split(job.prepared, "train")
        initial = [p.detach().clone() for p in model.backbone.parameters()]
        w0 = float(model.head.weight.detach().norm())
        options = replace(
            job.loop_options(seed, checkpointer, log, job.stopper(self._validator(job, split))),
            chunk_size=job.settings.chunk_size,
            mirror=job.data.mirror,
            amp=job.common.amp and job.device.type == "cuda",
        )
        cfg = job.features_cfg
        transform = transform_for(cfg.backbone, cfg.resize, cfg.crop, crop_mode=job.settings.crop_mode)
        decoder = make_decoder(split, transform, job.settings.num_workers, job.device, job.image.decode)
        try:
            model = train_on_images(model, decoder, job.pool, objective, options, all_labels=job.train_labels)
        finally:
            decoder.close()
        log.summary({"head_norm_ratio": float(model.head.weight.detach().norm()) / w0})
        outcome = {
            "weights": cfg.weights,
            "iterations": job.settings.iterations,
            "embedding": "pooled" if job.settings.pooled else "head",
        }
        if initial:  # how far the pretrained layers moved (the pixels backbone has none)
            moved = _relative_change(list(model.backbone.parameters()), initial)
            outcome["backbone_relative_change"] = moved
            log.summary({"backbone_relative_change": moved})
        return Trained(model, options.stopper, outcome)

    @staticmethod
    def _validator(job: TrainingJob, split):
        """The validation of the network: the validation images, centre crops, embedded."""
        if job.val_labels is None:
            return None
        cfg, image = job.features_cfg, job.image
        val_split = read_split(job.prepared, "test") if job.common.selection.split == "test" else split
        centre = transform_for(cfg.backbone, cfg.resize, cfg.crop)
        val_set = ImageDataset(val_split, centre, indices=job.val_idx)

        def validate(net):
            net = net.backbone if job.settings.pooled else net
            return job.scores(
                embed_dataset(
                    net, val_set, image.batch_size, image.num_workers, job.device, image.amp, "validate",
                    decode=image.decode,
                )
            )  # fmt: skip

        return validate


def _relative_change(now: list[torch.Tensor], initial: list[torch.Tensor]) -> float:
    """|now - initial| / |initial| over all the tensors (Frobenius norms)."""
    change = sum(float((p.detach().cpu() - q.cpu()).pow(2).sum()) for p, q in zip(now, initial)) ** 0.5
    return change / sum(float(q.pow(2).sum()) for q in initial) ** 0.5


def strategy_for(learns: str) -> Strategy:
    """The strategy of a kind of learning (``nothing``, ``last_layer``, ``all_layers``): the
    trainer of the kind :func:`~dscl.training.kinds.kind_for` gives. The kinds have one
    registry (:data:`~dscl.training.kinds.KINDS`, which names the valid ones); each
    strategy is the subclass of its kind that trains."""
    kind = type(kind_for(learns))
    (strategy,) = [cls for cls in Strategy.__subclasses__() if issubclass(cls, kind)]
    return strategy()
