"""The configuration module (dscl.config): the whole of params.yaml, typed and checked once."""

from dataclasses import dataclass

import pytest
import yaml

from dscl import config
from dscl.config import LastLayerConfig, ParamsError, build
from dscl.scoring.selection import SelectionRule
from tests.conftest import REPO, small_params


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


def test_values_are_checked_strictly_as_the_json_data_yaml_gives():
    """pydantic, strict, on YAML's plain data: nothing is converted but a list to a tuple
    and an integer to a number; the message names the key, the value and what is allowed."""
    import datetime

    with pytest.raises(ParamsError, match="x.a must be an integer, got '3'"):
        build(Inner, {"a": "3"}, "x")
    with pytest.raises(ParamsError, match="x.a must be an integer, got True"):
        build(Inner, {"a": True}, "x")
    with pytest.raises(ParamsError, match="x.b must be a finite number, got nan"):
        build(Inner, {"a": 1, "b": float("nan")}, "x")
    with pytest.raises(ParamsError, match=r"x must be plain data .*datetime.date\(2020, 1, 1\)"):
        build(Inner, {"a": datetime.date(2020, 1, 1)}, "x")
    assert build(Inner, {"a": 2, "b": 3}, "x").b == 3.0
    assert build(config.AblationConfig, {"methods": ["dscl_last"], "dims": [3, 4]}, "a").dims == (3, 4)
    with pytest.raises(
        ParamsError,
        match=r"unknown key\(s\) \['metricc'\] in train.common.selection; expected \['metric', 'min_delta'",
    ):
        build(config.CommonConfig, {"selection": {"metricc": "nmi"}}, "train.common")
    with pytest.raises(ParamsError, match=r"selection: patience must be >= 1 \(or null\), got 0"):
        build(config.CommonConfig, {"selection": {"patience": 0}}, "train.common")


def test_unknown_dataset_and_method_list_the_valid_names(workdir):
    params = small_params()
    params["datasets"] = ["digits", "mnist"]
    workdir(params)
    with pytest.raises(ParamsError, match=r"unknown datasets \['mnist'\]; valid names: \[.*'digits'"):
        config.load()
    params = small_params()
    params["methods"] = ["dscl"]
    workdir(params)
    with pytest.raises(ParamsError, match=r"unknown methods \['dscl'\]; valid names: \['vanilla'"):
        config.load()


def test_one_method_on_one_dataset(workdir):
    method, cfg = config.load().method("dscl_last", "digits")
    assert method.learns == "last_layer" and isinstance(cfg, LastLayerConfig)
    assert cfg.iterations == 5 and cfg.optimizer == "sgd"
    bad = small_params()["train"]["dscl_last"]["digits"]
    bad["optimizer"] = "lbfgs"
    with pytest.raises(
        ParamsError, match=r"train.dscl_last.digits.optimizer must be one of \['sgd', 'adam'\]"
    ):
        build(LastLayerConfig, bad, "train.dscl_last.digits")


def test_stage_command_line_prints_one_clear_line(workdir):
    import subprocess
    import sys

    params = small_params()
    params["methods"] = ["vanilla", "dscl"]
    root = workdir(params)
    res = subprocess.run(
        [sys.executable, "-m", "stages.prepare", "--dataset", "digits", "--out", "data/prepared/digits"],
        cwd=root,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    assert res.returncode == 2
    assert res.stderr.strip().startswith(
        "error: params.yaml: unknown methods ['dscl']; valid names: "
        "['vanilla', 'softmax', 'dscl_last', 'dscl_e2e', 'triplet_last'"
    )
    assert not (root / "data").exists()


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda p: p["evaluate"]["kmeans"].update(niterr=5),
            r"unknown key\(s\) \['niterr'\] in evaluate.kmeans; "
            r"expected \['backend', 'niter', 'seed'\]",
        ),
        (lambda p: p["report"]["tsne"].update(perplexity="high"), r"report.tsne.perplexity must be a number"),
        (
            lambda p: p["evaluate"]["recall_ks"].update(digits=[]),
            r"evaluate.recall_ks.digits must list at least one K",
        ),
        (
            lambda p: p["train"]["dscl_e2e"]["digits"].update(optimizer="lbfgs"),
            r"train.dscl_e2e.digits.optimizer must be one of",
        ),
        (
            lambda p: p["train"]["datasets"]["digits"].update(class_sampling="twice"),
            r"train.datasets.digits.class_sampling must be one of \['per_batch', 'once'\]",
        ),
        (
            lambda p: p["train"]["common"]["selection"].update(metric="recall@2"),
            r"train.common.selection.metric must be one of \['nmi', 'recall@1', 'map@r', 'r_precision'\]",
        ),
        (lambda p: p["features"]["datasets"]["digits"].update(backbone="vgg"), r"unknown backbone 'vgg'"),
        (
            lambda p: p["train"]["datasets"]["digits"].update(validation_classes=1),
            r"validation_classes is 1: set it to 2 or more",
        ),
        (
            lambda p: p["embed"].update(device="tpu"),
            r"embed.device must be one of \[.auto., .cpu., .cuda.\], got .tpu.",
        ),
        (
            lambda p: (
                p["methods"].append("triplet_last"),
                p["train"]["triplet_last"]["digits"]["loss"].update(margn=0.1),
            ),
            r"unknown key\(s\) \['margn'\] in train.triplet_last.digits.loss; expected \['margin'\]",
        ),
        (
            lambda p: p["train"]["softmax"]["digits"].update(loss={"margin": 0.1}),
            r"unknown key\(s\) \['margin'\] in train.softmax.digits.loss; expected \[\]",
        ),
        # a loss setting's range and choices, declared on its objective's settings class
        (
            lambda p: (
                p["methods"].append("triplet_last"),
                p["train"]["triplet_last"]["digits"]["loss"].update(margin=-0.1),
            ),
            r"train.triplet_last.digits.loss.margin must be >= 0, got -0.1",
        ),
        (
            lambda p: (
                p["methods"].append("facility_last"),
                p["train"]["facility_last"]["digits"]["loss"].update(margin_type="f1"),
            ),
            r"train.facility_last.digits.loss.margin_type must be one of \['nmi', 'ami', 'ari', 'vmeasure', "
            r"'const'\], got 'f1'",
        ),
        # what a newcomer mistypes: each value out of its declared range, in one line
        (
            lambda p: p["train"]["common"].update(seeds=[0, -1]),
            r"train.common.seeds\[1\] must be >= 0, got -1",
        ),
        (lambda p: p["embed"].update(batch_size=0), r"embed.batch_size must be >= 1, got 0"),
        (lambda p: p["evaluate"]["kmeans"].update(niter=0), r"evaluate.kmeans.niter must be >= 1, got 0"),
        (
            lambda p: p["evaluate"]["nmi"].update(digits={"seeds": 0, "restarts": 10}),
            r"evaluate.nmi.digits.seeds must be >= 1, got 0",
        ),
        (
            lambda p: p["evaluate"]["nmi"].update(sop={"seeds": 1, "restart": 1}),
            r"unknown key\(s\) \['restart'\] in evaluate.nmi.sop",
        ),
        (
            lambda p: p["report"]["tsne"].update(perplexity=-3),
            r"report.tsne.perplexity must be > 0, got -3",
        ),
        (
            lambda p: p["train"]["dscl_last"]["digits"].update(lr=float("inf")),
            r"train.dscl_last.digits.lr must be a finite number, got inf",
        ),
        (
            lambda p: p["train"]["dscl_last"]["digits"].update(momentum=5),
            r"train.dscl_last.digits.momentum must be < 1, got 5",
        ),
        (
            lambda p: p["train"]["dscl_e2e"]["digits"].update(weight_decay=-1),
            r"train.dscl_e2e.digits.weight_decay must be >= 0, got -1",
        ),
        (
            lambda p: p["train"]["common"].update(checkpoint_every=-5),
            r"train.common.checkpoint_every must be >= 1, got -5",
        ),
        (
            lambda p: p["train"]["dscl_last"]["digits"].update(seeds=[-1]),
            r"train.dscl_last.digits.seeds\[0\] must be >= 0",
        ),
        # unknown keys at every level, with the valid names
        (
            lambda p: p.update(evaluation={}),
            r"unknown key\(s\) \['evaluation'\] in the top level of params.yaml",
        ),
        (lambda p: p["evaluate"].update(kmean={}), r"unknown key\(s\) \['kmean'\] in evaluate; expected"),
        (lambda p: p["train"].update(dscl_lst={}), r"unknown key\(s\) \['dscl_lst'\] in train; expected"),
        (
            lambda p: p["train"]["dscl_last"].update(cub={}),
            r"unknown key\(s\) \['cub'\] in train.dscl_last; expected \[.*'cub200'",
        ),
        (lambda p: p["features"].update(images={}), r"unknown key\(s\) \['images'\] in features"),
        # entries the experiment does not list are checked too
        (
            lambda p: p["train"]["triplet_last"]["cars196"].update(lr=-1.0),
            r"train.triplet_last.cars196.lr must be > 0, got -1",
        ),
        # the ablation section, before its stage
        (
            lambda p: p["ablation"].update(digits={"methods": ["dscl_last"], "dims": [0]}),
            r"ablation.digits.dims\[0\] must be >= 1, got 0",
        ),
        (
            lambda p: p["ablation"].update(digits={"methods": ["dscl_e2e"], "dims": [4]}),
            r"ablation.digits.methods: 'dscl_e2e' does not learn the last layer alone",
        ),
        (
            lambda p: p["ablation"].update(digits={"methods": ["dscl_last"], "dim": [4]}),
            r"unknown key\(s\) \['dim'\] in ablation.digits",
        ),
    ],
)
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
    from dscl.methods import METHODS

    cfg = config.load(REPO / "params.yaml")
    for dataset in dataset_names():
        cfg.dataset_options(dataset)
        cfg.features(dataset)
        cfg.train_dataset(dataset)
        cfg.recall_ks(dataset)
        for method in METHODS:
            cfg.method(method, dataset)


def test_choices_are_listed_once_and_the_library_refuses_others():
    """The schema's choices are dscl.choices' types, and the library checks its arguments
    against the same names: an unknown one is refused with the list."""
    import numpy as np

    from dscl import choices
    from dscl.device import resolve_device
    from dscl.objectives import check_settings
    from dscl.scoring.kmeans import kmeans

    assert config.Device is choices.Device and config.CropMode is choices.CropMode
    assert config.KMeansBackend is choices.KMeansBackend
    for call, listed in (
        (lambda: resolve_device("tpu"), choices.DEVICES),
        (lambda: kmeans(np.zeros((4, 2), np.float32), 2, backend="sklearn"), choices.KMEANS_BACKENDS),
        (lambda: check_settings("facility", {"margin_type": "f1"}), choices.MARGIN_TYPES),
    ):
        with pytest.raises(ValueError) as err:
            call()
        assert all(name in str(err.value) for name in listed)


def test_merge_keys_resolve_and_dvc_set_param_changes_one_entry(tmp_path):
    """params.yaml writes each method's defaults once (YAML merge keys); DVC's ``-S``
    (``apply_overrides``) on one dataset's entry, a loss setting included, changes that
    entry alone."""
    from dvc.utils.hydra import apply_overrides

    path = tmp_path / "params.yaml"
    path.write_text((REPO / "params.yaml").read_text())
    before = yaml.safe_load(path.read_text())
    assert before["train"]["dscl_e2e"]["cub200"] == before["train"]["dscl_e2e"]["cars196"]
    assert before["train"]["triplet_last"]["cub200"]["loss"] == {"margin": 0.2}
    apply_overrides(path, ["train.dscl_e2e.cub200.lr=0.01", "train.triplet_last.sop.loss.margin=0.3"])
    after = yaml.safe_load(path.read_text())
    assert after["train"]["dscl_e2e"]["cub200"]["lr"] == 0.01
    assert after["train"]["triplet_last"]["sop"]["loss"]["margin"] == 0.3
    for section in ("dscl_e2e", "triplet_last"):
        for dataset, entry in after["train"][section].items():
            if (section, dataset) not in {("dscl_e2e", "cub200"), ("triplet_last", "sop")}:
                assert entry == before["train"][section][dataset], (section, dataset)


@pytest.mark.slow
def test_an_edit_to_one_dataset_reruns_only_its_stages(tmp_path):
    """The stages that read ``train.dscl_e2e.cub200_mini`` (its learning rate, say) are that
    dataset's alone: digits' results are not touched by tuning the testbed."""
    import shutil
    import subprocess

    from dvc.repo import Repo

    shutil.copy(REPO / "dvc.yaml", tmp_path / "dvc.yaml")
    text = (REPO / "params.yaml").read_text()  # as committed: merge keys and all
    assert "\ndatasets: [digits]\n" in text
    (tmp_path / "params.yaml").write_text(
        text.replace("\ndatasets: [digits]\n", "\ndatasets: [digits, cub200_mini]\n")
    )
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run(["dvc", "init", "-q"], cwd=tmp_path, check=True)
    readers = {}
    for stage in Repo(str(tmp_path)).index.stages:
        for dep in stage.params:
            for key in dep.params:
                readers.setdefault(key, set()).add(stage.name)
    assert readers["train.softmax.cub200_mini"] == {"train@cub200_mini-softmax"}
    # a last-layer method's entry is also read by the dataset's ablation, which may retrain it
    assert readers["train.dscl_last.cub200_mini"] == {"train@cub200_mini-dscl_last", "ablation@cub200_mini"}
    cub_only = {k: v for k, v in readers.items() if k.endswith(".cub200_mini")}
    assert all(all("digits" not in s for s in stages) for stages in cub_only.values())
    assert "train.common" in readers  # shared settings are shared on purpose


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda t: t.replace("\nembed:\n", "\nembed:\n  device: cpu\n"),
            r"key 'device' appears twice in one mapping \(lines \d+ and \d+\); keep one",
        ),
        (lambda t: t + "embed: {device: cpu}\n", r"key 'embed' appears twice in one mapping"),
        (lambda t: t + "embed: [1, 2\n", r"params.yaml: not valid YAML \(line \d+\)"),
    ],
)
def test_duplicated_keys_and_broken_yaml_are_refused(workdir, edit, message):
    """PyYAML keeps the last of two equal keys without a word; the project refuses them.
    A merge key's values may still be overridden (the entries of params.yaml do that)."""
    root = workdir()
    path = root / "params.yaml"
    path.write_text(edit(path.read_text()))
    with pytest.raises(ParamsError, match=message):
        config.load()
    (root / "merge.yaml").write_text("a: &a {x: 1, y: 2}\nb: {<<: *a, y: 3}\n")
    assert config.read_yaml(root / "merge.yaml")["b"] == {"x": 1, "y": 3}


def test_every_bad_value_is_refused_within_a_second(workdir):
    """The whole file is checked at once: fast enough for every stage to do it first."""
    import time

    workdir()
    start = time.perf_counter()
    for _ in range(5):
        config.load()
    assert (time.perf_counter() - start) / 5 < 1.0


def test_no_default_in_the_code_differs_from_params_yaml():
    """A field left out of params.yaml takes the value params.yaml gives everywhere else:
    the sections' defaults, the methods' and the objectives' settings against the
    ``defaults`` anchors (the selection rule's min_delta too: 0.5, the evidence on the
    model-selection page)."""
    from dscl.objectives import OBJECTIVES

    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    sections = [
        (config.ImageConfig, raw["features"]["image"]),
        (config.CommonConfig, raw["train"]["common"]),
        (SelectionRule, raw["train"]["common"]["selection"]),
        (config.EmbedConfig, raw["embed"]),
        (config.KMeansConfig, raw["evaluate"]["kmeans"]),
        (config.NumericsConfig, raw["numerics"]),
        (config.TsneConfig, raw["report"]["tsne"]),
        (config.GalleryConfig, raw["report"]["gallery"]),
        (config.BootstrapConfig, raw["report"]["bootstrap"]),
        (config.TorchrunConfig, raw["train"]["common"]["torchrun"]),
        (config.LastLayerConfig, raw["defaults"]["last_layer"]),
        (config.ImageTrainConfig, raw["defaults"]["e2e"]),
        # each objective's settings class against the loss anchor of params.yaml
        *((OBJECTIVES.get(name), values) for name, values in raw["defaults"]["loss"].items()),
    ]
    assert set(raw["defaults"]["loss"]) == set(OBJECTIVES) - {"dscl", "softmax"}  # the two without settings
    checked = 0
    for cls, values in sections:
        for name, default in config.field_defaults(cls).items():
            if name not in values:
                continue
            default = list(default) if isinstance(default, tuple) else default
            assert default == values[name], (
                f"{cls.__name__}.{name}: {default!r} in the code, {values[name]!r} in params.yaml"
            )
            checked += 1
    assert checked >= 55


def test_per_dataset_defaults_are_the_papers_recipe():
    """The per-dataset sections' defaults are the paper's recipe, which params.yaml's
    cub200 and cars196 entries write out (a default no entry writes, such as a null that
    means "inherit", is left alone)."""

    from dscl.methods import METHODS

    raw = config.read_yaml(REPO / "params.yaml")
    differ = []

    def compare(cls, node, where):
        for name, default in config.field_defaults(cls).items():
            if name not in node or name == "loss":
                continue
            default = list(default) if isinstance(default, tuple) else default
            if node[name] != default:
                differ.append(f"{where}.{name}: code {default!r}, params.yaml {node[name]!r}")

    for dataset in ("cub200", "cars196"):
        compare(config.FeatureConfig, raw["features"]["datasets"][dataset], f"features.datasets.{dataset}")
        compare(config.DatasetTrainConfig, raw["train"]["datasets"][dataset], f"train.datasets.{dataset}")
        compare(config.NmiConfig, raw["evaluate"]["nmi"][dataset], f"evaluate.nmi.{dataset}")
        for name, method in METHODS.items():
            compare(config.method_config_type(method), raw["train"][name][dataset], f"train.{name}.{dataset}")
    assert not differ, differ
