"""The whole of params.yaml, checked by every stage before it does anything: a bad key
of ``evaluate`` or ``report`` fails at the first stage that runs (``prepare``), not
after hours of training."""

from __future__ import annotations

from dscl.device import DEVICES
from stages.embed import EmbedParams
from stages.evaluate import KMeansParams
from stages.features import ImageParams, read_feature_params
from stages.params import ParamsError, build, convert, entry, section
from stages.prepare import PrepareParams, dataset_options
from stages.report import ReportParams
from stages.train import CommonParams, DatasetTrainParams, check_selection, read_method_params


def check_all(params: dict) -> None:
    """Build every section the experiment's stages will read (for each dataset of
    ``datasets`` and method of ``methods``); raise :class:`ParamsError` on the first
    problem, naming the key and what was expected."""
    section(params, "prepare", PrepareParams)
    common = section(params, "train.common", CommonParams)
    embed = section(params, "embed", EmbedParams)
    section(params, "evaluate.kmeans", KMeansParams)
    section(params, "report", ReportParams)
    image = section(params, "features.image", ImageParams)
    for dataset in params["datasets"]:
        dataset_options(params, dataset)
        read_feature_params(params, dataset)
        ds = build(DatasetTrainParams, entry(params, "train.datasets", dataset, "dataset"),
                   f"train.datasets.{dataset}")
        check_selection(common, ds, dataset)
        for method in params["methods"]:
            read_method_params(params, method, dataset)
        where = f"evaluate.recall_ks.{dataset}"
        ks = convert(entry(params, "evaluate.recall_ks", dataset, "dataset"), tuple[int, ...], where)
        if not ks or min(ks) < 1:
            raise ParamsError(f"params.yaml: {where} must list at least one K, each >= 1; got {list(ks)}")
    for where, name in (("features.image.device", image.device),
                        ("train.common.device", common.device), ("embed.device", embed.device)):
        if name not in DEVICES:  # CUDA's presence is checked where it is used
            raise ParamsError(f"params.yaml: {where} must be one of {list(DEVICES)}, got {name!r}")
