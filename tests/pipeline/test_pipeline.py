"""One end-to-end ``dvc repro`` of the digits pipeline in a temporary copy."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time

import pytest
import yaml

from tests.conftest import REPO, dump, small_params
from tests.pipeline.conftest import copy_run

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("dvc") is None, reason="dvc is not installed"),
]

ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@t",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@t",
    "DVC_NO_ANALYTICS": "1",
    "PYTHONPATH": "",
}


def sh(cwd, *cmd):
    res = subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True)
    assert res.returncode == 0, f"{cmd} failed:\n{res.stdout}\n{res.stderr}"
    return res.stdout + res.stderr


def dvc(cwd, *args):
    """``python -m dvc <args>`` in ``cwd``, checked; its output."""
    return sh(cwd, sys.executable, "-m", "dvc", *args)


def ran(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def project(root, params: dict, files=("dvc.yaml", ".dvcignore")) -> None:
    """A copy of the project's code and pipeline in ``root`` with ``params``, committed to
    a fresh git repository (what a clone holds)."""
    root.mkdir(parents=True, exist_ok=True)
    for name in ("dscl", "stages"):
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in files:
        shutil.copy(REPO / name, root / name)
    (root / ".dvc").mkdir()
    shutil.copy(REPO / ".dvc/config", root / ".dvc/config")
    shutil.copytree(REPO / ".dvc/plots", root / ".dvc/plots")
    (root / "params.yaml").write_text(dump(params))
    sh(root, "git", "init", "-q")
    sh(root, "git", "add", "-A")
    sh(root, "git", "commit", "-qm", "init")


def test_dvc_repro_end_to_end(digits_run, tmp_path):
    run, first = digits_run
    tmp_path = copy_run(run, tmp_path / "project")
    methods = ["vanilla", "softmax", "dscl_last", "dscl_e2e"]
    expected = {
        "check",
        "prepare@digits",
        "features@digits",
        "curves@digits",
        "report@digits",
        "ablation@digits",
    } | {f"{s}@digits-{m}" for s in ("train", "embed", "evaluate") for m in methods}
    assert ran(first) == expected
    for m in methods:
        metrics = json.loads((tmp_path / f"reports/metrics/digits/{m}.json").read_text())
        assert 0 < metrics["with_sc"]["nmi"] <= 100
        assert (tmp_path / f"reports/plots/digits/tsne_{m}.png").is_file()
    assert (tmp_path / "reports/tables/digits.md").is_file()
    assert (tmp_path / "reports/tables/digits.csv").is_file()

    assert ran(dvc(tmp_path, "repro")) == set()  # nothing to redo

    # dvc plots show: one figure of curves for the dataset, every method's in it, and every
    # figure of the report
    shown = json.loads(dvc(tmp_path, "plots", "show", "--json"))["data"]
    pngs = sorted(p.relative_to(tmp_path).as_posix() for p in (tmp_path / "reports/plots").rglob("*.png"))
    assert sorted(shown) == sorted(["reports/curves/digits.tsv", *pngs]) and len(pngs) > 8
    (figure,) = shown["reports/curves/digits.tsv"]
    rows = figure["content"]["data"]["values"]
    assert {r["method"] for r in rows} == set(methods)
    assert {r["curve"] for r in rows if r["method"] == "dscl_e2e"} == {
        "training loss / its first value",
        "validation recall@1 (without sc)",
    }

    # every output is byte-identical when re-run (models included): the lock is unchanged
    lock = (tmp_path / "dvc.lock").read_text()
    assert ran(dvc(tmp_path, "repro", "--force")) == expected
    assert (tmp_path / "dvc.lock").read_text() == lock

    params = small_params()
    params["train"]["dscl_last"]["digits"]["lr"] = 0.5
    (tmp_path / "params.yaml").write_text(dump(params))
    assert ran(dvc(tmp_path, "repro")) == {
        "check",  # params.yaml changed: checked again, its output the same (nothing else re-runs for it)
        "train@digits-dscl_last",
        "embed@digits-dscl_last",
        "evaluate@digits-dscl_last",
        "curves@digits",
        "report@digits",
        "ablation@digits",  # it reads the methods' entries of train
    }

    # -- the train stage under torchrun: two gloo processes give the one-process model --
    import torch

    single = torch.load(tmp_path / "models/digits-dscl_e2e/model.pt", weights_only=True)
    params["train"]["common"]["torchrun"]["nproc_per_node"] = 2
    (tmp_path / "params.yaml").write_text(dump(params))
    out = dvc(tmp_path, "repro", "-s", "train@digits-dscl_e2e")
    assert ran(out) == {"train@digits-dscl_e2e"}
    parallel = torch.load(tmp_path / "models/digits-dscl_e2e/model.pt", weights_only=True)
    assert parallel["record"] == single["record"]
    for k, v in single["state_dict"].items():
        assert torch.allclose(parallel["state_dict"][k], v, rtol=1e-4, atol=1e-6), k

    # -- a queued sweep: a setting and a dataset's archive, run from the queue, listed ---
    params["train"]["common"]["torchrun"]["nproc_per_node"] = 1
    (tmp_path / "params.yaml").write_text(dump(params))
    dvc(tmp_path, "repro")
    sh(tmp_path, "git", "add", "-A")
    sh(tmp_path, "git", "commit", "-qm", "results")
    # the setting's own stages only (as the docs' sweeps target them): no report to redraw
    dvc(
        tmp_path,
        "exp",
        "run",
        "--queue",
        "-n",
        "lr-0.2",
        "-S",
        "train.dscl_last.digits.lr=0.2",
        "evaluate@digits-dscl_last",
    )
    # a dataset's raw archive (never in git) reaches the queue's workspace by --copy-paths:
    # without it, prepare would try to download (and fail offline)
    from tests.archives import make_cub

    (tmp_path / "data/raw/cub200").mkdir(parents=True)
    make_cub(tmp_path / "data/raw/cub200/CUB_200_2011.tgz")
    dvc(
        tmp_path,
        "exp",
        "run",
        "--queue",
        "-n",
        "cub-archive",
        "--copy-paths",
        "data/raw",
        "-S",
        "datasets=[cub200]",
        "-S",
        "prepare.verify_checksum=false",
        "prepare@cub200",
    )
    dvc(tmp_path, "queue", "start", "-j", "1")
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        status = dvc(tmp_path, "queue", "status")
        if not re.search(r"\b(Queued|Running)\b", status):
            break
        time.sleep(3)
    assert status.count("Success") == 2, status
    shown = json.loads(dvc(tmp_path, "exp", "show", "--json"))
    exps = {}
    for commit in shown:
        for exp in commit.get("experiments") or []:
            for rev in exp.get("revs", []):
                data = rev.get("data", {})
                exps[rev.get("name")] = data
    assert {"lr-0.2", "cub-archive"} <= set(exps), sorted(exps)
    # DVC's own viewer fits a terminal: what a one-parameter experiment changed, at most 60
    # columns (the other experiment, another dataset, removed first)
    dvc(tmp_path, "exp", "remove", "cub-archive")
    table = dvc(tmp_path, "exp", "show", "--only-changed", "--csv")
    header = next(csv.reader(io.StringIO(table[table.index("Experiment,") :])))
    assert len(header) <= 60, (len(header), header)
    data = exps["lr-0.2"]
    assert data["params"]["params.yaml"]["data"]["train"]["dscl_last"]["digits"]["lr"] == 0.2
    metrics = data["metrics"]["reports/metrics/digits/dscl_last.json"]["data"]
    assert 0 < metrics["without_sc"]["recall@1"] <= 100


def test_dvc_repro_on_your_own_photographs(tmp_path):
    """The dataset imagefolder: a folder of class sub-folders through the whole pipeline."""
    from tests.archives import make_image_folder

    make_image_folder(tmp_path / "photos", {f"species_{c:02d}": 8 for c in range(10)})
    params = small_params()
    params["datasets"] = ["imagefolder"]
    params["methods"] = ["vanilla", "dscl_last", "dscl_e2e"]
    params["prepare"]["datasets"]["imagefolder"] = {"path": "photos", "test_fraction": 0.5, "seed": 0}
    params["features"]["datasets"]["imagefolder"] = {
        "backbone": "pixels",
        "weights": "none",
        "resize": 16,
        "crop": 12,
    }
    project(tmp_path, params)

    out = dvc(tmp_path, "repro")
    assert {"prepare@imagefolder", "report@imagefolder", "train@imagefolder-dscl_e2e"} <= ran(out)
    meta = json.loads((tmp_path / "data/prepared/imagefolder/meta.json").read_text())
    assert (meta["train_classes"], meta["test_classes"], meta["test_images"]) == (5, 5, 40)
    for m in params["methods"]:
        metrics = json.loads((tmp_path / f"reports/metrics/imagefolder/{m}.json").read_text())
        assert 0 < metrics["without_sc"]["recall@1"] <= 100
    assert "imagefolder" in (tmp_path / "reports/tables/imagefolder.md").read_text().lower()


# One refused value in each section of params.yaml, and the words its message must hold.
REFUSED = [
    ("datasets", ["nowhere"], "unknown datasets"),
    ("methods", ["dscl"], "unknown methods"),
    ("prepare.verify_checksum", "yes", "prepare.verify_checksum"),
    ("features.image.batch_size", 0, "features.image.batch_size"),
    ("train.common.torchrun", {"x;touch planted;": 1}, "train.common.torchrun"),
    ("train.dscl_last.digits.lr", "1e30", "train.dscl_last.digits.lr"),
    ("embed.batch_size", -1, "embed.batch_size"),
    ("evaluate.kmeans.niter", 0, "evaluate.kmeans.niter"),
    ("report.tsne.perplexity", -3, "report.tsne.perplexity"),
    ("ablation.digits", {"methods": ["vanilla"], "dims": [8]}, "ablation.digits.methods"),
    ("numerics.threads", "two", "numerics.threads"),
]


def _set(params: dict, dotted: str, value) -> dict:
    *path, last = dotted.split(".")
    node = params
    for key in path:
        node = node[key]
    node[last] = value
    return params


def _outputs(root) -> dict:
    """Every file of the run's outputs, with its bytes' digest."""
    import hashlib

    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for top in ("data", "models", "reports", "checkpoints")
        for p in sorted((root / top).rglob("*"))
        if p.is_file()
    }


def test_a_refused_setting_loses_nothing(digits_run, tmp_path):
    """A bad value in each section of params.yaml: ``dvc repro`` stops at the check stage
    in one line naming the key, before DVC removes any output. Every output keeps its
    bytes, ``git status`` shows params.yaml alone, ``dvc status`` finds nothing to do once
    the good file is back, and no params value reached a shell (the planted key runs
    nothing)."""
    run, _ = digits_run
    root = copy_run(run, tmp_path / "project")
    sh(root, "git", "add", "-A")
    sh(root, "git", "add", "-f", "reports")
    sh(root, "git", "commit", "-qm", "results")
    assert sh(root, "git", "status", "--porcelain") == ""
    outputs = _outputs(root)
    assert len(outputs) > 50
    good = (root / "params.yaml").read_text()
    for key, value, words in REFUSED:
        (root / "params.yaml").write_text(dump(_set(yaml.safe_load(good), key, value)))
        res = subprocess.run(
            [sys.executable, "-m", "dvc", "repro"], cwd=root, env=ENV, capture_output=True, text=True
        )
        assert res.returncode != 0, key
        errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and words in errors[0], (key, res.stderr)
        assert "Traceback" not in res.stdout + res.stderr, key
        assert ran(res.stdout) == {"check"}, (key, res.stdout)
        assert _outputs(root) == outputs, key
        assert sh(root, "git", "status", "--porcelain").splitlines() == [" M params.yaml"], key
        assert not (root / "planted").exists()
        (root / "params.yaml").write_text(good)  # the good file back: DVC finds nothing changed
        assert json.loads(dvc(root, "status", "--json")) == {}, key


def _stage_processes(root) -> list:
    """The stage processes still running in ``root`` (python -m stages.*)."""
    import psutil

    found = []
    for p in psutil.process_iter(["cmdline", "cwd"]):
        try:
            if p.info["cwd"] == str(root) and any(a.startswith("stages.") for a in p.info["cmdline"] or []):
                found.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return found


def _leftovers(root) -> list[str]:
    return [
        p.relative_to(root).as_posix()
        for top in ("data", "models", "reports", "checkpoints")
        for p in (root / top).rglob("*")
        if p.name.endswith((".tmp", ".partial"))
    ]


def _long_training() -> dict:
    params = small_params()
    params["train"]["dscl_last"]["digits"].update(iterations=400, validate_every=50)
    params["train"]["common"]["checkpoint_every"] = 10
    return params


@pytest.fixture(scope="module")
def uninterrupted(digits_run, tmp_path_factory):
    """The finished run after one uninterrupted ``dvc repro`` of a longer training: the
    bytes every interrupted run must end with."""
    reference = copy_run(digits_run[0], tmp_path_factory.mktemp("uninterrupted") / "project")
    (reference / "params.yaml").write_text(dump(_long_training()))
    dvc(reference, "repro")
    return reference


@pytest.mark.parametrize("whom", ["dvc alone", "its process group"])
def test_an_interrupted_repro_resumes_to_the_same_bytes(digits_run, uninterrupted, tmp_path, whom):
    """``dvc repro`` killed (SIGKILL) at random points while it trains, embeds and
    reports, then run again: every output and dvc.lock are byte-identical to an
    uninterrupted run's, no temporary file is left, and no stage process outlives the
    kill (each is tied to its parent's life) to write into the next run."""
    import random
    import signal

    want = _outputs(uninterrupted)
    root = copy_run(digits_run[0], tmp_path / "interrupted")
    (root / "params.yaml").write_text(dump(_long_training()))
    rng = random.Random(f"{whom}")
    for _ in range(2):
        proc = subprocess.Popen(
            [sys.executable, "-m", "dvc", "repro"], cwd=root, env=ENV, start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(rng.uniform(3.0, 9.0))
        if whom == "dvc alone":
            proc.kill()
        else:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 3  # a tied stage ends at once; an orphan trains on for long
        while _stage_processes(root) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _stage_processes(root) == [], "a stage outlived the killed dvc repro"
        (root / ".dvc/tmp/rwlock").unlink(missing_ok=True)  # DVC's own lock of the killed run
        (root / ".dvc/tmp/lock").unlink(missing_ok=True)
    dvc(root, "repro")
    assert _outputs(root) == want
    assert (root / "dvc.lock").read_text() == (uninterrupted / "dvc.lock").read_text()
    assert _leftovers(root) == []


def test_two_repros_at_once_end_with_dvcs_lock_message(digits_run, tmp_path):
    """A second ``dvc repro`` while one runs stops at DVC's lock, touching nothing."""
    import signal

    root = copy_run(digits_run[0], tmp_path / "project")
    first = subprocess.Popen(
        [sys.executable, "-m", "dvc", "repro", "--force"], cwd=root, env=ENV, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        time.sleep(4)
        second = subprocess.run(
            [sys.executable, "-m", "dvc", "repro"], cwd=root, env=ENV, capture_output=True, text=True
        )
        assert second.returncode != 0
        assert "lock" in (second.stdout + second.stderr).lower(), second.stderr
        assert ran(second.stdout) == set()
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
