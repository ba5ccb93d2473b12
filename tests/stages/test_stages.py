"""Each stage on tiny data, in a temporary working folder."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from dscl import layout
from dscl.config import ParamsError, TsneConfig
from dscl.methods import METHODS as REGISTRY
from dscl.report.plots import plot_tsne
from dscl.training import fit, strategies
from stages import embed, evaluate, features, prepare, report, train
from tests.conftest import small_params

pytestmark = pytest.mark.slow  # runs stages, DVC or the real-photograph testbed

METHODS = list(REGISTRY)  # every registered method: the paper's and the baselines


def run_until_features(root):
    prepare.main(["--dataset", "digits", "--out", "data/prepared/digits"])
    features.main(
        ["--dataset", "digits", "--prepared", "data/prepared/digits", "--out", "data/features/digits"]
    )
    return root / "data/prepared/digits", root / "data/features/digits"


def train_args(method):
    key = f"digits-{method}"
    return [
        "--dataset",
        "digits",
        "--method",
        method,
        "--prepared",
        "data/prepared/digits",
        "--features",
        "data/features/digits",
        "--out",
        f"models/{key}",
        "--live",
        f"reports/train/{key}",
        "--checkpoint",
        f"checkpoints/{key}",
    ]


def embed_args(method):
    return [
        "--dataset",
        "digits",
        "--model",
        f"models/digits-{method}",
        "--prepared",
        "data/prepared/digits",
        "--features",
        "data/features/digits",
        "--out",
        f"data/embeddings/digits/{method}",
    ]


def embed_digits(method):
    embed.main(embed_args(method))


def evaluate_digits(method):
    evaluate.main(
        [
            "--dataset",
            "digits",
            "--embeddings",
            f"data/embeddings/digits/{method}",
            "--out",
            f"reports/metrics/digits/{method}.json",
            "--details",
            f"data/evaluation/digits/{method}",
            "--environment",
            f"reports/environment/digits/{method}.json",
        ]
    )


def train_embed_evaluate(method):
    """The stages train, embed and evaluate of ``method`` on digits."""
    train.main(train_args(method))
    embed_digits(method)
    evaluate_digits(method)


REPORT_ARGS = {
    "--dataset": "digits",
    "--metrics": "reports/metrics/digits",
    "--embeddings": "data/embeddings/digits",
    "--evaluation": "data/evaluation/digits",
    "--prepared": "data/prepared/digits",
    "--table": "reports/tables/digits",
    "--plots": "reports/plots/digits",
}


def run_report():
    """The report stage of digits."""
    report.main([x for pair in REPORT_ARGS.items() for x in pair])


def test_prepare_digits_split(workdir):
    root = workdir()
    prepared, _ = run_until_features(root)
    rows = {
        s: list(csv.DictReader(io.StringIO((prepared / f"{s}.csv").read_text()))) for s in ("train", "test")
    }
    train_labels = {int(r["label"]) for r in rows["train"]}
    test_labels = {int(r["label"]) for r in rows["test"]}
    assert train_labels == {0, 1, 2, 3, 4} and test_labels == {5, 6, 7, 8, 9}
    assert len(rows["train"]) + len(rows["test"]) == 1797
    meta = json.loads((prepared / "meta.json").read_text())
    assert (prepared / meta["image_root"] / rows["test"][0]["path"]).is_file()
    assert not list(root.glob("data/prepared/.*tmp"))  # nothing half-written left


def test_features_are_the_pixels(workdir):
    root = workdir()
    _, feats = run_until_features(root)
    x = np.load(feats / "train.npy")
    assert x.shape == (len(np.load(feats / "train_labels.npy")), 64)
    from sklearn.datasets import load_digits

    digits = load_digits()
    first = np.flatnonzero(digits.target < 5)[0]
    assert np.allclose(x[0], np.rint(digits.images[first].ravel() * 255 / 16) / 255, atol=1e-6)
    mirrored = np.load(feats / "train_mirrored.npy")
    assert np.allclose(mirrored[0].reshape(8, 8), x[0].reshape(8, 8)[:, ::-1])


def test_train_embed_evaluate_report_every_method(workdir):
    params = small_params()
    params["methods"] = METHODS
    root = workdir(params)
    run_until_features(root)
    for method in METHODS:
        key = f"digits-{method}"
        train.main(train_args(method))
        saved = torch.load(root / f"models/{key}/model.pt", weights_only=True)
        assert saved["record"]["method"] == method
        embed_digits(method)
        emb = np.load(root / f"data/embeddings/digits/{method}/test.npy")
        assert emb.shape[0] == 896 and np.isfinite(emb).all()
        # 5 training classes less 2 validation classes: d = 3
        assert emb.shape[1] == (64 if method == "vanilla" else 3)
        # triplet, lifted, multi-similarity measure l2-normalised embeddings: so does the test
        assert np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5) == REGISTRY[method].normalized
        assert saved["record"]["trained_classes"] == 3 and saved["record"]["validation_classes"] == 2
        summary = json.loads((root / f"reports/train/{key}/metrics.json").read_text())
        assert summary["selected_step"] == saved["record"]["selected_step"]
        assert summary["selected_on"] == "validation"
        assert set(summary["selected"]) == {"with_sc", "without_sc"}
        info = json.loads((root / f"data/embeddings/digits/{method}/info.json").read_text())
        assert info["selected_step"] == summary["selected_step"]
        val_curve = root / f"reports/train/{key}/plots/metrics/val/without_sc/recall@1.tsv"
        steps = [int(r.split("\t")[0]) for r in val_curve.read_text().split("\n")[1:] if r]
        assert steps[0] == 0 and summary["selected_step"] in steps
        evaluate_digits(method)
        metrics = json.loads((root / f"reports/metrics/digits/{method}.json").read_text())
        assert set(metrics) == {"with_sc", "without_sc", "kmeans"}  # figures, for DVC's viewers
        where = json.loads((root / f"reports/environment/digits/{method}.json").read_text())
        assert set(where) == {"train", "embed", "evaluate"}  # where each step ran, beside them
        assert "environment" not in summary  # nor in the training summary: in the model's record
        kmeans = metrics["kmeans"]  # the NMI: the mean over the k-means seeds it records
        assert (kmeans["seeds"], kmeans["restarts"]) == (50, 10) and len(kmeans["nmi"][0]["with_sc"]) == 50
        assert abs(np.mean(kmeans["nmi"][0]["without_sc"]) - metrics["without_sc"]["nmi"]) < 0.02
        assert set(metrics["with_sc"]) == {
            "nmi",
            "recall@1",
            "recall@2",
            "recall@4",
            "recall@8",
            "map@r",
            "r_precision",
        }
        assert all(0 <= v <= 100 for variant in ("with_sc", "without_sc") for v in metrics[variant].values())
        if method != "vanilla":
            curve = (root / f"reports/train/{key}/plots/metrics/loss.tsv").read_text().split("\n")
            assert curve[0] == "step\tloss" and len([c for c in curve[1:] if c]) >= 3
    run_report()
    table = (root / "reports/tables/digits.md").read_text()
    assert (
        table.count("| measured |") == 2 * len(METHODS)
        and "| Step | NMI | R@1 | R@2 | R@4 | R@8 | MAP@R | RP |" in table
    )
    assert "| Vanilla backbone (with SC) | measured | — |" in table and "†" not in table.split("\n\n")[1]
    assert len((root / "reports/tables/digits.csv").read_text().splitlines()) == 1 + 2 * len(METHODS)
    assert (root / "reports/plots/digits/methods.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for method in METHODS:
        for name in (f"tsne_{method}", f"retrieval_{method}"):
            png = root / f"reports/plots/digits/{name}.png"
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the galleries: one size for every method (the same 4 + 2 rows of 1 + 4 images), and
    # the seeded queries (the first column) identical in every method's figure
    from PIL import Image

    figures = [
        np.asarray(Image.open(root / f"reports/plots/digits/retrieval_{m}.png").convert("RGB")).astype(int)
        for m in METHODS
    ]
    assert len({f.shape for f in figures}) == 1
    query_column = [f[:, 120:204] for f in figures]  # after the label column: the queries
    seeded = slice(30, 30 + 22 + 4 * 110)  # below the title (the method's name): the 4 seeded rows
    assert figures[0].shape[:2] == (30 + 2 * 22 + 6 * 110 + 6, 120 + 5 * 84 + 6)
    # each figure has its own 256-colour palette: the same tiles, to within its rounding
    assert all(np.abs(q[seeded] - query_column[0][seeded]).mean() < 2 for q in query_column)
    neighbours = [f[seeded, 204:288] for f in figures]  # the first neighbours do differ
    assert max(np.abs(n - neighbours[0]).mean() for n in neighbours) > 5
    assert (root / "reports/plots/digits/retrieval.png").is_file()
    comparison = (root / "reports/tables/digits_comparison.md").read_text()
    assert "| Ours (last layer) | Triplet s.h. (last layer) | without SC |" in comparison
    assert "| Ours (end-to-end) | NMI-based (end-to-end) | with SC |" in comparison
    assert "95% interval of the paired difference" in comparison
    cells = table.split("| Ours (last layer) (without SC) | measured |")[1].split("\n")[0]
    assert cells.count("[") == 7  # an interval on each of the 7 figures


def test_last_layer_training_lowers_the_loss_and_resumes(workdir):
    params = small_params()
    params["train"]["dscl_last"]["digits"].update(iterations=40)
    root = workdir(params)
    run_until_features(root)
    train.main(train_args("dscl_last"))
    curve = np.loadtxt(root / "reports/train/digits-dscl_last/plots/metrics/loss.tsv", skiprows=1)
    assert curve[-1, 1] < 0.7 * curve[0, 1]
    first = torch.load(root / "models/digits-dscl_last/model.pt", weights_only=True)
    assert not (root / "checkpoints/digits-dscl_last/state.pt").exists()  # completed
    train.main(train_args("dscl_last"))  # a fresh, seeded run gives the same model
    again = torch.load(root / "models/digits-dscl_last/model.pt", weights_only=True)
    for k in first["state_dict"]:
        assert torch.equal(first["state_dict"][k], again["state_dict"][k])


def test_interrupted_training_resumes_to_the_same_model(workdir):
    params = small_params()
    params["train"]["dscl_last"]["digits"].update(iterations=10, validate_every=4)
    params["train"]["common"]["checkpoint_every"] = 4
    root = workdir(params)
    run_until_features(root)
    train.main(train_args("dscl_last"))
    reference = torch.load(root / "models/digits-dscl_last/model.pt", weights_only=True)
    # interrupt a fresh run at iteration 7, after its checkpoint at iteration 4 (steps 5
    # and 6 were logged after it)
    from dscl.objectives import Objective

    calls = {"n": 0}
    real = Objective.__call__

    def failing(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 7:
            raise KeyboardInterrupt
        return real(self, *a, **k)

    Objective.__call__ = failing
    try:
        with pytest.raises(KeyboardInterrupt):
            train.main(train_args("dscl_last"))
    finally:
        Objective.__call__ = real
    assert torch.load(root / "checkpoints/digits-dscl_last/state.pt", weights_only=True)["iteration"] == 4
    train.main(train_args("dscl_last"))
    resumed = torch.load(root / "models/digits-dscl_last/model.pt", weights_only=True)
    for k in reference["state_dict"]:
        assert torch.allclose(reference["state_dict"][k], resumed["state_dict"][k], atol=1e-6)
    # the curve holds every step once: the points the interrupted run logged after its
    # checkpoint are not written twice
    curves = root / "reports/train/digits-dscl_last/plots/metrics"
    loss = np.loadtxt(curves / "loss.tsv", skiprows=1)
    assert loss[:, 0].tolist() == list(range(1, 11))
    val = np.loadtxt(curves / "val/without_sc/recall@1.tsv", skiprows=1)
    assert val[:, 0].tolist() == [0, 4, 8, 10]


def test_selection_rules_and_softmax_embeddings(workdir):
    params = small_params()
    params["train"]["common"]["selection"]["split"] = "test"
    params["train"]["softmax"]["digits"]["embedding"] = "pooled"
    root = workdir(params)
    run_until_features(root)
    for method in ("vanilla", "softmax"):
        train_embed_evaluate(method)
    saved = torch.load(root / "models/digits-softmax/model.pt", weights_only=True)["record"]
    assert saved["selected_on"] == "test" and saved["trained_classes"] == 5  # nothing carved
    # pooled: the fine-tuned backbone's feature (the pixels backbone: the 64 pixels)
    emb = np.load(root / "data/embeddings/digits/softmax/test.npy")
    assert emb.shape == (896, 64)
    params["methods"] = ["vanilla", "softmax"]
    workdir(params)
    run_report()
    table = (root / "reports/tables/digits.md").read_text()
    assert f"| Softmax regression (with SC) | measured | {saved['selected_step']}/3† |" in table
    # selecting on validation classes needs at least two of them
    params["train"]["common"]["selection"]["split"] = "validation"
    params["train"]["datasets"]["digits"]["validation_classes"] = 1
    workdir(params)
    with pytest.raises(ParamsError, match="validation_classes is 1: set it to 2 or more"):
        train.main(train_args("dscl_last"))
    # ... and at least two training classes left: too many fail before any output
    params["train"]["datasets"]["digits"]["validation_classes"] = 4
    root = workdir(params)
    shutil.rmtree(root / "checkpoints", ignore_errors=True)
    with pytest.raises(ParamsError, match=r"train\.datasets\.digits\.validation_classes: .*\[0, 3\]"):
        train.main(train_args("dscl_last"))
    assert not (root / "checkpoints/digits-dscl_last").exists()
    # ... and a batch the classes drawn first could never fill
    params["train"]["datasets"]["digits"].update(validation_classes=2, class_subsample=2)
    params["train"]["dscl_last"]["digits"]["batch_size"] = 1000
    root = workdir(params)
    with pytest.raises(
        ParamsError,
        match=r"train\.datasets\.digits\.class_subsample: a batch of 1000 cannot be drawn from 2 classes: "
        r"the 2 largest training classes hold \d+ images",
    ):
        train.main(train_args("dscl_last"))
    assert not (root / "checkpoints/digits-dscl_last").exists()
    train.main(train_args("vanilla"))  # which draws no batch: the class subsample is no matter
    assert (root / "models/digits-vanilla/model.pt").is_file()


def test_bad_params_fail_before_work(workdir):
    params = small_params()
    params["train"]["dscl_last"]["digits"]["learning_rate"] = 0.1
    root = workdir(params)
    with pytest.raises(ParamsError, match=r"unknown key\(s\) \['learning_rate'\] in train.dscl_last"):
        train.main(train_args("dscl_last"))
    params = small_params()
    params["features"]["datasets"]["digits"]["backbone"] = "vgg"
    workdir(params)
    with pytest.raises(ValueError, match=r"unknown backbone 'vgg'; valid names: \["):
        features.main(
            ["--dataset", "digits", "--prepared", "data/prepared/digits", "--out", "data/features/digits"]
        )
    assert not (root / "data/features").exists()
    workdir(small_params())
    with pytest.raises(ValueError, match=r"unknown dataset 'mnist'; valid names"):
        prepare.main(["--dataset", "mnist", "--out", "data/prepared/mnist"])


def test_tsne_of_a_degenerate_embedding_still_renders(tmp_path):
    emb = np.ones((30, 4), dtype=np.float32)
    labels = np.repeat(np.arange(3), 10)
    plot_tsne(emb, labels, "constant", tmp_path / "t.png", TsneConfig())
    assert (tmp_path / "t.png").read_bytes()[:4] == b"\x89PNG"


def test_several_seeds_give_mean_and_std(workdir):
    """train.common.seeds: one run per seed; the first seed's run is the single-seed run;
    metrics hold the mean over runs, their standard deviation and each run; the table
    shows mean ± std."""
    params = small_params()
    params["methods"] = ["vanilla", "dscl_last"]
    root = workdir(params)
    run_until_features(root)

    def run_all():
        for method in params["methods"]:
            train_embed_evaluate(method)
        return {
            m: json.loads((root / f"reports/metrics/digits/{m}.json").read_text()) for m in params["methods"]
        }

    single = run_all()
    single_model = (root / "models/digits-dscl_last/model.pt").read_bytes()
    params["train"]["common"]["seeds"] = [0, 3, 7]
    workdir(params)
    shutil.rmtree(root / "data/embeddings")
    several = run_all()
    model_dir = root / "models/digits-dscl_last"
    assert sorted(p.name for p in model_dir.iterdir()) == ["model.pt", "seed-3.pt", "seed-7.pt"]
    first = torch.load(model_dir / "model.pt", weights_only=True)
    assert first["record"]["seed"] == 0
    assert torch.equal(
        first["state_dict"]["weight"],
        torch.load(io.BytesIO(single_model), weights_only=True)["state_dict"]["weight"],
    )
    other = torch.load(model_dir / "seed-3.pt", weights_only=True)
    assert not torch.equal(other["state_dict"]["weight"], first["state_dict"]["weight"])
    m = several["dscl_last"]
    assert [r["seed"] for r in m["runs"]] == [0, 3, 7]
    assert m["runs"][0]["without_sc"] == single["dscl_last"]["without_sc"]  # seed 0 as before
    for variant in ("with_sc", "without_sc"):
        for name, mean in m[variant].items():
            values = [r[variant][name] for r in m["runs"]]
            assert mean == pytest.approx(np.mean(values), abs=0.006)
            assert m["std"][variant][name] == pytest.approx(np.std(values, ddof=1), abs=0.006)
    assert len({r["without_sc"]["recall@1"] for r in m["runs"]}) > 1  # the seeds differ
    assert all(v == 0 for v in several["vanilla"]["std"]["without_sc"].values())  # nothing trained
    assert not list((root / "checkpoints/digits-dscl_last").glob("*.pt"))  # cleared when done
    assert (root / "reports/train/digits-dscl_last/plots/metrics/seed-3/plots/metrics/loss.tsv").is_file()
    info = json.loads((root / "data/embeddings/digits/dscl_last/info.json").read_text())
    assert info["seeds"] == [0, 3, 7] and len(info["selected_steps"]) == 3
    run_report()
    table = (root / "reports/tables/digits.md").read_text()
    row = next(
        line for line in table.split("\n") if line.startswith("| Ours (last layer) (without SC) | measured")
    )
    assert f"{m['without_sc']['nmi']:.2f} ± {m['std']['without_sc']['nmi']:.2f}" in row
    assert ", ".join(str(s) for s in info["selected_steps"]) in row
    with pytest.raises(ParamsError, match="seeds must be a non-empty list of distinct"):
        params["train"]["common"]["seeds"] = [1, 1]
        workdir(params)
        train.main(train_args("dscl_last"))


def test_an_interrupted_multi_seed_run_keeps_its_finished_seeds(workdir, monkeypatch):
    params = small_params()
    params["methods"] = ["dscl_last"]
    params["train"]["common"]["seeds"] = [0, 3]
    root = workdir(params)
    run_until_features(root)
    train.main(train_args("dscl_last"))
    reference = {p.name: p.read_bytes() for p in (root / "models/digits-dscl_last").iterdir()}

    real, calls = strategies.train_last_layer, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # in the second seed's run
        return real(*args, **kwargs)

    monkeypatch.setattr(strategies, "train_last_layer", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train.main(train_args("dscl_last"))
    assert layout.done_file(root / "checkpoints/digits-dscl_last", 0).is_file()
    calls.clear()
    monkeypatch.setattr(strategies, "train_last_layer", lambda *a, **k: calls.append(1) or real(*a, **k))
    train.main(train_args("dscl_last"))
    assert len(calls) == 1  # only the seed that had not finished
    assert {p.name: p.read_bytes() for p in (root / "models/digits-dscl_last").iterdir()} == reference


def test_a_model_file_is_data_not_code(workdir, tmp_path):
    """The embed stage reads models with weights_only=True: a file carrying a pickled
    object is refused with a clear message, and so is a model of another format."""
    from dscl.inference.embedding import ModelFileError, load_model

    class Payload:
        def __reduce__(self):
            return (print, ("this would run",))

    crafted = tmp_path / "crafted.pt"
    torch.save({"record": {"format": fit.MODEL_FORMAT}, "state_dict": {}, "x": Payload()}, crafted)
    with pytest.raises(ModelFileError, match="carries objects other than tensors"):
        load_model(crafted)
    old = tmp_path / "old.pt"
    torch.save({"record": {"kind": "head"}, "state_dict": {}}, old)
    with pytest.raises(ModelFileError, match=r"incompatible version \(model format None"):
        load_model(old)


def test_the_dimension_ablation_retrains_at_each_d(workdir):
    from stages import ablation

    params = small_params()
    params["ablation"] = {"digits": {"methods": ["dscl_last", "triplet_last"], "dims": [2, 6]}}
    root = workdir(params)
    run_until_features(root)
    args = ["--dataset", "digits", "--prepared", "data/prepared/digits", "--features", "data/features/digits"]
    ablation.main([*args, "--table", "reports/tables/digits_ablation"])
    table = (root / "reports/tables/digits_ablation.md").read_text()
    rows = [r for r in table.splitlines() if r.startswith("| Ours") or r.startswith("| Triplet")]
    assert len(rows) == 2 * 2 * 2  # methods x dims x variants
    assert "| Ours (last layer) | 6 | without SC |" in table and table.count("[") >= 7 * len(rows)
    csv_rows = (root / "reports/tables/digits_ablation.csv").read_text().splitlines()
    assert csv_rows[0].startswith("method,dim,variant,steps,nmi mean,nmi low,nmi high") and len(csv_rows) == 9
    params["ablation"]["digits"]["methods"] = ["dscl_e2e"]
    workdir(params)
    with pytest.raises(ValueError, match="does not learn the last layer alone"):
        ablation.main([*args, "--table", "reports/tables/x"])
    params["ablation"]["digits"] = {"methods": ["dscl_last"], "dims": [0]}
    workdir(params)
    with pytest.raises(ParamsError, match=r"ablation.digits.dims\[0\] must be >= 1, got 0"):
        ablation.main([*args, "--table", "reports/tables/x"])
    assert not (root / "reports/tables/x.md").exists()


def test_a_diverging_run_ends_with_one_warning_line_or_names_the_setting(workdir):
    """A learning rate of 1e30: N-pairs' loss overflows within a few steps. With validation
    the stage keeps the state validated before (step 0), ends successfully and says so in
    one line; without a validated state it ends in one line naming the step and the
    setting to lower. Run as a user runs it (a subprocess, no traceback)."""
    import subprocess
    import sys

    from tests.conftest import REPO

    params = small_params()
    params["methods"] = ["npairs_last"]
    params["train"]["npairs_last"]["digits"].update(lr=1e30, optimizer="sgd", iterations=20)
    root = workdir(params)
    run_until_features(root)
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    cmd = [sys.executable, "-m", "stages.train", *train_args("npairs_last")]
    out = subprocess.run(cmd, cwd=root, capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    warnings = [line for line in out.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "Traceback" not in out.stderr
    assert "the loss became NaN or infinite at step" in warnings[0]
    assert "kept the model validated at step 0" in warnings[0]
    record = torch.load(root / "models/digits-npairs_last/model.pt", weights_only=True)["record"]
    assert record["selected_step"] == 0 and 1 <= record["diverged_at"] <= 20
    summary = json.loads((root / "reports/train/digits-npairs_last/metrics.json").read_text())
    assert summary["diverged_at"] == record["diverged_at"]

    params["train"]["common"]["selection"]["split"] = "none"
    workdir(params)
    shutil.rmtree(root / "models/digits-npairs_last")
    out = subprocess.run(cmd, cwd=root, capture_output=True, text=True, env=env)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    (line,) = out.stderr.strip().splitlines()[-1:]
    assert line.startswith("error: train@digits-npairs_last: the loss became NaN or infinite at step")
    assert line.endswith("lower train.npairs_last.digits.lr (1e+30)")
    assert not (root / "models/digits-npairs_last").exists()


LEARNING = [m for m in REGISTRY.names() if REGISTRY.get(m).learns != "nothing"]


def test_every_method_at_an_absurd_learning_rate_keeps_a_model_or_says_none_was_usable(workdir):
    """At lr 1e30 every method diverges (NaN) or collapses (constant embeddings) within a
    few steps: each ends either with a kept model and one warning naming the key, or
    with one line saying no step was usable and naming it; never a traceback, never a
    model of collapsed embeddings."""
    import subprocess
    import sys

    from tests.conftest import REPO

    params = small_params()
    params["methods"] = LEARNING
    for m in LEARNING:
        params["train"][m]["digits"].update(lr=1e30, iterations=6, validate_every=2)
    root = workdir(params)
    run_until_features(root)
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    outcomes = {}
    for m in LEARNING:
        out = subprocess.run(
            [sys.executable, "-m", "stages.train", *train_args(m)],
            cwd=root,
            capture_output=True,
            text=True,
            env=env,
        )
        key = f"train.{m}.digits.lr (1e+30)"
        assert "Traceback" not in out.stderr, (m, out.stderr)
        lines = [line for line in out.stderr.splitlines() if line.startswith(("warning:", "error:"))]
        assert len(lines) == 1 and key in lines[0], (m, out.stderr)
        if out.returncode == 0:
            assert (
                lines[0].startswith(f"warning: train@digits-{m}")
                and "kept the model validated at step" in lines[0]
            )
            state = torch.load(root / f"models/digits-{m}/model.pt", weights_only=True)
            assert state["record"]["stopped_by"] in lines[0]
            outcomes[m] = "kept"
        else:
            assert out.returncode == 2 and "before any validated state" in lines[0], (m, out.stderr)
            assert not (root / f"models/digits-{m}").exists()
            outcomes[m] = "none usable"
    assert set(outcomes) == set(LEARNING)


@pytest.mark.parametrize(
    "stage, args, message",
    [
        (
            "embed",
            embed_args("dscl_last"),
            r"^error: models/digits-dscl_last/model.pt not found: run the train stage first$",
        ),
        (
            "evaluate",
            [
                "--dataset",
                "digits",
                "--embeddings",
                "data/embeddings/digits/dscl_last",
                "--out",
                "reports/metrics/digits/dscl_last.json",
                "--details",
                "data/evaluation/digits/dscl_last",
                "--environment",
                "reports/environment/digits/dscl_last.json",
            ],
            r"^error: .*data/embeddings/digits/dscl_last.*: No such file or directory \(the stage that",
        ),
    ],
)
def test_a_stage_missing_its_input_says_so_in_one_line(workdir, capsys, stage, args, message):
    """A stage whose input is missing (its upstream stage failed, or was never run) ends
    in one line and exit status 2, not a traceback."""
    import importlib
    import re

    from stages.cli import run

    module = importlib.import_module(f"stages.{stage}")
    with pytest.raises(SystemExit) as exit_:
        run(lambda: module.main(args))
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and re.search(message, err), err


_ORPHANED_STAGE = """
import ctypes, os, subprocess, sys, time
if sys.argv[1:] == ["parent"]:  # as dvc repro: start the stage, die (SIGKILL-like) once it is tied
    stage = subprocess.Popen([sys.executable, "-m", "stages.launch", "-m", "stages.check", "--help"])
    status = f"/proc/{stage.pid}/status"
    while not int(next(l for l in open(status) if l.startswith("SigCgt")).split()[1], 16) & 1 << 14:
        time.sleep(0.001)  # until the stage catches SIGTERM: then it is tied
    print("torch loaded when tied:", "libtorch" in open(f"/proc/{stage.pid}/maps").read(), flush=True)
    os._exit(0)
ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: the orphan comes here
subprocess.run([sys.executable, "-c", sys.argv[1], "parent"])
pid, status = os.wait()  # the orphaned stage
print("stage exit:", os.waitstatus_to_exitcode(status))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_stage_is_tied_to_its_parent_before_it_imports_torch():
    """``dvc repro`` killed while a stage starts: the stage is tied to its parent's life
    before its first heavy import (torch's, seconds on a busy machine), so it ends at once
    (exit 143, as on SIGTERM), also when a subreaper, not init, adopts it (a CI runner or a
    container's init may be one: the stage then cannot tell from its parent's pid)."""
    command = [sys.executable, "-c", _ORPHANED_STAGE, _ORPHANED_STAGE]
    out = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert "torch loaded when tied: False" in out.stdout, out.stdout + out.stderr
    assert "stage exit: 143" in out.stdout, out.stdout + out.stderr
