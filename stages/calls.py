"""The library's calls that two stages make, with params.yaml's settings: written once."""

from __future__ import annotations

from dscl import config
from dscl.training.fit import train_method


def train_runs(
    cfg: config.Config, dataset: str, method, settings, *, prepared, features, live, checkpoint, device
):
    """:func:`~dscl.training.fit.train_method` with the dataset's settings of params.yaml
    (the one call of it: the train and the ablation stages)."""
    return train_method(
        dataset=dataset,
        method=method,
        settings=settings,
        common=cfg.common,
        data=cfg.train_dataset(dataset),
        image=cfg.image,
        features_cfg=cfg.features(dataset),
        prepared=prepared,
        features=features,
        live=live,
        checkpoint=checkpoint,
        device=device,
        kmeans=cfg.kmeans_options(dataset),
    )
