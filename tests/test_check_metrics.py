"""The CI regression gate fails on a drop beyond the tolerance, and only then."""

from __future__ import annotations

import json
import sys

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "scripts"))
import check_metrics  # noqa: E402


def write(path, with_nmi, recall):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"with_sc": {"nmi": with_nmi, "recall@1": recall}}))


def test_gate(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    baseline = {"reports/metrics/d/m.json": {"with_sc": {"nmi": 50.0, "recall@1": 70.0}}}
    write(tmp_path / "reports/metrics/d/m.json", 48.5, 75.0)  # -1.5 and +5: pass
    assert check_metrics.compare(baseline, tolerance=2.0) == []
    write(tmp_path / "reports/metrics/d/m.json", 47.9, 75.0)  # -2.1: fail
    failures = check_metrics.compare(baseline, tolerance=2.0)
    assert failures == ["reports/metrics/d/m.json: with_sc.nmi dropped 50.00 -> 47.90"]
    (tmp_path / "reports/metrics/d/m.json").unlink()
    assert check_metrics.compare(baseline, tolerance=2.0) == [
        "reports/metrics/d/m.json: missing from the workspace"]
