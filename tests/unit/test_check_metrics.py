"""The CI regression gate fails on a drop beyond the tolerance, and only then; it reads
the committed and the current metrics through DVC's API."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "scripts"))
import check_metrics


def metrics(with_nmi, recall):
    return {"with_sc": {"nmi": with_nmi, "recall@1": recall}}


def test_gate():
    baseline = {"reports/metrics/d/m.json": metrics(50.0, 70.0)}
    current = {"reports/metrics/d/m.json": metrics(48.5, 75.0)}  # -1.5 and +5: pass
    assert check_metrics.compare(baseline, current, tolerance=2.0) == []
    current = {"reports/metrics/d/m.json": metrics(47.9, 75.0)}  # -2.1: fail
    assert check_metrics.compare(baseline, current, tolerance=2.0) == [
        "reports/metrics/d/m.json: with_sc.nmi dropped 50.00 -> 47.90"
    ]
    assert check_metrics.compare(baseline, {}, tolerance=2.0) == [
        "reports/metrics/d/m.json: missing from the workspace"
    ]
    current = {"reports/metrics/d/m.json": {"with_sc": {"nmi": 50.0}}}
    assert check_metrics.compare(baseline, current, tolerance=2.0) == [
        "reports/metrics/d/m.json: with_sc.recall@1 missing"
    ]


def test_gate_compares_means_over_seeds():
    """With several seeds, the gate reads the means; the spread is not a score."""

    def seeded(mean, std, runs):
        return {
            "with_sc": {"nmi": mean},
            "std": {"with_sc": {"nmi": std}},
            "runs": [{"seed": i, "with_sc": {"nmi": v}} for i, v in enumerate(runs)],
        }

    baseline = {"m.json": seeded(50.0, 3.0, [47.0, 50.0, 53.0])}
    current = {"m.json": seeded(49.0, 0.5, [48.5, 49.0, 49.5])}  # mean -1, std -2.5: pass
    assert check_metrics.compare(baseline, current, tolerance=2.0) == []
    current = {"m.json": seeded(47.5, 3.0, [44.5, 47.5, 50.5])}  # mean -2.5: fail
    assert check_metrics.compare(baseline, current, tolerance=2.0) == [
        "m.json: with_sc.nmi dropped 50.00 -> 47.50"
    ]
    # a single-seed baseline against a several-seed run: the value against the mean
    assert (
        check_metrics.compare(
            {"m.json": metrics(50.0, 70.0)},
            {"m.json": {**metrics(49.0, 69.0), "std": {"with_sc": {"nmi": 9.0}}}},
            tolerance=2.0,
        )
        == []
    )


@pytest.mark.slow
def test_reads_the_committed_and_the_current_metrics(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    def run(*cmd):
        subprocess.run(cmd, check=True, capture_output=True)

    run("git", "init", "-q")
    run("dvc", "init", "-q")
    for name, value in (("a", 50.0), ("b", 60.0)):
        path = tmp_path / f"reports/metrics/d/{name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(metrics(value, 70.0)))
    run("git", "add", "-A")
    run("git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "baseline")
    (tmp_path / "reports/metrics/d/a.json").write_text(json.dumps(metrics(40.0, 70.0)))
    committed = check_metrics.read_metrics("HEAD", "reports/metrics")
    assert committed == {
        "reports/metrics/d/a.json": metrics(50.0, 70.0),
        "reports/metrics/d/b.json": metrics(60.0, 70.0),
    }
    assert check_metrics.read_metrics(None, "reports/metrics")["reports/metrics/d/a.json"] == metrics(
        40.0, 70.0
    )
    assert check_metrics.main(["--rev", "HEAD"]) == 1  # a's NMI dropped 10 points
    (tmp_path / "reports/metrics/d/a.json").write_text(json.dumps(metrics(49.0, 71.0)))
    assert check_metrics.main(["--rev", "HEAD"]) == 0
    assert check_metrics.read_metrics("HEAD", "reports/nothing") == {}
