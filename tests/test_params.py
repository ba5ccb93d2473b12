from dataclasses import dataclass

import pytest

from stages.params import ParamsError, build, check_experiment, load_params, section
from stages.train import LastLayerParams
from tests.conftest import small_params


@dataclass(frozen=True)
class Inner:
    a: int
    b: float = 1.0
    c: str | None = None


def test_build_refuses_unknown_and_missing_keys():
    assert build(Inner, {"a": 1, "b": 2}, "x") == Inner(1, 2.0)
    with pytest.raises(ParamsError, match=r"unknown key\(s\) \['lrr'\] in x; expected \['a', 'b', 'c'\]"):
        build(Inner, {"a": 1, "lrr": 3}, "x")
    with pytest.raises(ParamsError, match="missing key x.a"):
        build(Inner, {}, "x")
    with pytest.raises(ParamsError, match="x.a must be an integer"):
        build(Inner, {"a": "one"}, "x")
    with pytest.raises(ParamsError, match="x.b must be a number"):
        build(Inner, {"a": 1, "b": True}, "x")


def test_unknown_dataset_and_method_list_the_valid_names():
    params = small_params()
    check_experiment(params)
    params["datasets"] = ["digits", "mnist"]
    with pytest.raises(ParamsError, match=r"unknown datasets \['mnist'\]; valid names: \[.*'digits'"):
        check_experiment(params)
    params = small_params()
    params["methods"] = ["dscl"]
    with pytest.raises(ParamsError, match=r"unknown methods \['dscl'\]; valid names: \['vanilla'"):
        check_experiment(params)


def test_section_reads_one_stage(workdir):
    params = load_params()
    cfg = section(params, "train.dscl_last.digits", LastLayerParams)
    assert cfg.iterations == 5 and cfg.optimizer == "sgd"
    bad = small_params()
    bad["train"]["dscl_last"]["digits"]["optimizer"] = "lbfgs"
    with pytest.raises(ParamsError, match=r"optimizer must be one of \('sgd', 'adam'\)"):
        build(LastLayerParams, bad["train"]["dscl_last"]["digits"], "train.dscl_last.digits")


def test_stage_command_line_prints_one_clear_line(workdir):
    import subprocess
    import sys

    from tests.conftest import REPO

    params = small_params()
    params["methods"] = ["vanilla", "dscl"]
    root = workdir(params)
    res = subprocess.run([sys.executable, "-m", "stages.prepare", "--dataset", "digits", "--out",
                          "data/prepared/digits"], cwd=root, capture_output=True, text=True,
                         env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert res.returncode == 2
    assert res.stderr.strip().startswith("error: params.yaml: unknown methods ['dscl']; valid names: "
                                         "['vanilla', 'softmax', 'dscl_last', 'dscl_e2e', 'triplet_last'")
    assert not (root / "data").exists()


@pytest.mark.parametrize("edit, message", [
    (lambda p: p["evaluate"]["kmeans"].update(niterr=5),
     r"unknown key\(s\) \['niterr'\] in evaluate.kmeans; expected \['backend', 'niter', 'nredo', 'seed'\]"),
    (lambda p: p["report"]["tsne"].update(perplexity="high"), r"report.tsne.perplexity must be a number"),
    (lambda p: p["evaluate"]["recall_ks"].update(digits=[]), r"evaluate.recall_ks.digits must list at least one K"),
    (lambda p: p["train"]["dscl_e2e"]["digits"].update(optimizer="lbfgs"),
     r"train.dscl_e2e.digits: optimizer must be one of"),
    (lambda p: p["train"]["datasets"]["digits"].update(validation_classes=1),
     r"validation_classes is 1: set it to 2 or more"),
    (lambda p: p["embed"].update(device="tpu"), r"embed.device must be one of \[.auto., .cpu., .cuda.\], got .tpu."),
    (lambda p: (p["methods"].append("triplet_last"), p["train"]["triplet_last"]["digits"]["loss"].update(margn=0.1)),
     r"train.triplet_last.digits.loss: unknown loss setting\(s\) \['margn'\] for 'triplet'; expected \['margin'\]"),
    (lambda p: p["train"]["softmax"]["digits"].update(loss={"margin": 0.1}),
     r"train.softmax.digits: softmax has no loss settings"),
])
def test_a_bad_key_anywhere_fails_at_the_first_stage(workdir, edit, message):
    """prepare, the first stage, reads only ``prepare``, yet checks the whole file."""
    from stages import prepare

    params = small_params()
    params["datasets"] = ["digits"]
    edit(params)
    root = workdir(params)
    with pytest.raises(ParamsError, match=message):
        prepare.main(["--dataset", "digits", "--out", "data/prepared/digits"])
    assert not (root / "data").exists()


def test_every_dataset_has_valid_settings_for_every_stage():
    """params.yaml lists settings for every registered dataset, per stage and method, and
    each builds: switching ``datasets`` to any of them cannot fail on a missing key."""
    from dscl.datasets import dataset_names
    from stages.features import read_feature_params
    from dscl.methods import METHODS
    from stages.train import DatasetTrainParams, read_method_params
    from tests.conftest import REPO

    params = load_params(REPO / "params.yaml")
    for dataset in dataset_names():
        read_feature_params(params, dataset)
        build(DatasetTrainParams, params["train"]["datasets"][dataset], dataset)
        for method in METHODS:
            read_method_params(params, method, dataset)
        assert params["evaluate"]["recall_ks"][dataset]


def test_an_edit_to_one_dataset_reruns_only_its_stages(tmp_path):
    """The stages that read ``train.dscl_e2e.cub200_mini`` (its learning rate, say) are that
    dataset's alone: digits' results are not touched by tuning the testbed."""
    import shutil
    import subprocess

    import yaml
    from dvc.repo import Repo

    from tests.conftest import REPO

    shutil.copy(REPO / "dvc.yaml", tmp_path / "dvc.yaml")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["datasets"] = ["digits", "cub200_mini"]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run(["dvc", "init", "-q"], cwd=tmp_path, check=True)
    readers = {}
    for stage in Repo(str(tmp_path)).index.stages:
        for dep in stage.params:
            for key in dep.params:
                readers.setdefault(key, set()).add(stage.name)
    for method in ("softmax", "dscl_last", "dscl_e2e"):
        assert readers[f"train.{method}.cub200_mini"] == {f"train@cub200_mini-{method}"}
    cub_only = {k: v for k, v in readers.items() if k.endswith(".cub200_mini")}
    assert all(all("digits" not in s for s in stages) for stages in cub_only.values())
    assert "train.common" in readers  # shared settings are shared on purpose
