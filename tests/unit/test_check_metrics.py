"""The regression gate: each figure against its own measured tolerance; a drop beyond it,
a non-finite or missing figure or file fail; improvements and new methods are listed."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "scripts"))
import check_metrics

TOLERANCES = {"d": {"m": {"with_sc.nmi": 1.0, "with_sc.recall@1": 0.5}, "o": {"with_sc.nmi": 3.0}}}


def metrics(nmi=50.0, recall=70.0, **extra):
    return {"with_sc": {"nmi": nmi, "recall@1": recall}, **extra}


def verdicts(baseline, current, tolerances=TOLERANCES):
    return {
        (r.file, r.figure): (r.verdict, r.reason)
        for r in check_metrics.compare(baseline, current, tolerances)
    }


def test_within_noise_improved_and_dropped_each_against_its_own_tolerance():
    got = verdicts({"d/m.json": metrics()}, {"d/m.json": metrics(nmi=49.1, recall=70.6)})
    assert got == {
        ("d/m.json", "with_sc.nmi"): ("ok", "within its noise"),  # -0.9 within 1.0
        ("d/m.json", "with_sc.recall@1"): ("improved", "rose beyond its noise"),  # +0.6 beyond 0.5
    }
    got = verdicts({"d/m.json": metrics()}, {"d/m.json": metrics(nmi=50.0, recall=69.4)})
    assert got[("d/m.json", "with_sc.recall@1")] == ("FAIL", "dropped beyond its noise")  # -0.6
    assert got[("d/m.json", "with_sc.nmi")] == ("ok", "within its noise")


def test_non_finite_figures_fail_on_either_side():
    nan = float("nan")
    got = verdicts({"d/m.json": metrics()}, {"d/m.json": metrics(nmi=nan, recall=math.inf)})
    assert got[("d/m.json", "with_sc.nmi")] == ("FAIL", "not finite now")
    assert got[("d/m.json", "with_sc.recall@1")] == ("FAIL", "not finite now")
    got = verdicts({"d/m.json": metrics(nmi=nan)}, {"d/m.json": metrics()})
    assert got[("d/m.json", "with_sc.nmi")] == ("FAIL", "not finite in the baseline")


def test_a_missing_file_or_figure_fails_and_a_new_method_is_listed():
    got = verdicts({"d/m.json": metrics()}, {})
    assert got == {("d/m.json", "(file)"): ("FAIL", "metrics file missing")}
    got = verdicts({"d/m.json": metrics()}, {"d/m.json": {"with_sc": {"nmi": 50.0}}})
    assert got[("d/m.json", "with_sc.recall@1")] == ("FAIL", "figure missing")
    got = verdicts({"d/m.json": metrics()}, {"d/m.json": metrics(), "d/new.json": metrics()})
    assert got[("d/new.json", "with_sc.nmi")] == ("new", "new method")
    got = verdicts({}, {"d/new.json": metrics(nmi=float("nan"))})
    assert got[("d/new.json", "with_sc.nmi")] == ("FAIL", "not finite")


def test_means_over_seeds_are_compared_not_their_spread_runs_or_environment():
    seeded = metrics(
        std={"with_sc": {"nmi": 9.0}},
        runs=[{"seed": 0, "with_sc": {"nmi": 10.0}}],
        environment={"evaluate": {"threads": 2}},
    )
    assert check_metrics.figures(seeded) == {"with_sc.nmi": 50.0, "with_sc.recall@1": 70.0}


def test_an_unmeasured_figure_takes_its_datasets_largest_tolerance():
    got = check_metrics.compare({"d/x.json": metrics()}, {"d/x.json": metrics(nmi=47.5)}, TOLERANCES)
    (nmi,) = [r for r in got if r.figure == "with_sc.nmi"]
    assert (nmi.verdict, nmi.tolerance) == ("ok", 3.0)
    assert "other methods" in nmi.reason
    with pytest.raises(ValueError, match="no tolerance for with_sc.nmi on e"):
        check_metrics.compare({"e/x.json": metrics()}, {"e/x.json": metrics()}, TOLERANCES)


def test_the_table_lists_what_moved():
    rows = check_metrics.compare(
        {"d/m.json": metrics(), "d/o.json": metrics()},
        {"d/m.json": metrics(nmi=49.5, recall=60.0), "d/o.json": metrics()},
        TOLERANCES,
    )
    table = check_metrics.markdown(rows, "the results at X")
    assert table.startswith("**Metrics gate: FAIL** against the results at X: 4 figures, 1 failed")
    body = [line for line in table.splitlines() if line.startswith("| d/")]
    assert body == [
        "| d/m.json | with_sc.recall@1 | 70.00 | 60.00 | -10.00 | ±0.50 "
        "| **FAIL**: dropped beyond its noise |",
        "| d/m.json | with_sc.nmi | 50.00 | 49.50 | -0.50 | ±1.00 | ok: within its noise |",
    ]
    still = check_metrics.compare({"d/o.json": metrics()}, {"d/o.json": metrics()}, TOLERANCES)
    assert check_metrics.markdown(still, "X").endswith("No figure moved.\n")


@pytest.mark.slow
def test_main_reads_the_branch_point_of_main_and_the_workspace(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    def git(*cmd):
        subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@t", *cmd], check=True, capture_output=True
        )

    def write(name, value):
        path = tmp_path / f"reports/metrics/d/{name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))

    git("init", "-q", "-b", "main")
    noise = {"methods": {"m": {"tolerance": {"with_sc.nmi": 1.0, "with_sc.recall@1": 1.0}}}}
    (tmp_path / "reports/noise").mkdir(parents=True)
    (tmp_path / "reports/noise/d.json").write_text(json.dumps(noise))
    write("m", metrics())
    git("add", "-A")
    git("commit", "-qm", "main's results")
    git("checkout", "-qb", "branch")
    write("m", metrics(nmi=45.0))  # a regression committed on the branch ...
    git("commit", "-qam", "regressed")
    summary = tmp_path / "summary.md"
    assert check_metrics.main(["--summary", str(summary)]) == 1  # ... is caught against main
    assert "merge base of HEAD and main" in summary.read_text()
    assert check_metrics.main(["--rev", "HEAD"]) == 0  # against itself it passes
    write("m", {"with_sc": {"nmi": 45.0, "recall@1": "x"}})
    assert check_metrics.main(["--rev", "HEAD"]) == 1  # a figure that is not a number is missing
    (tmp_path / "reports/metrics/d/m.json").write_text("{not json")
    assert check_metrics.main(["--rev", "HEAD"]) == 2


@pytest.mark.slow
def test_main_writes_the_pull_requests_report(tmp_path, monkeypatch, capsys):
    """--report against main: the parameter, the table and the figure that the branch
    changed, and the figure copied for upload."""
    monkeypatch.chdir(tmp_path)

    def run(*cmd):
        subprocess.run(list(cmd), check=True, capture_output=True)

    def git(*cmd):
        run("git", "-c", "user.name=t", "-c", "user.email=t@t", *cmd)

    files = {
        "reports/metrics/d/m.json": json.dumps(metrics()),
        "reports/noise/d.json": json.dumps(
            {"methods": {"m": {"tolerance": {"with_sc.nmi": 1.0, "with_sc.recall@1": 1.0}}}}
        ),
        "reports/tables/d.md": "| Method | NMI |\n| m | 50.00 |\n",
        "reports/tables/e.md": "| Method | NMI |\n| m | 60.00 |\n",
        "reports/plots/d/methods.png": "png",
        "reports/plots/e/methods.png": "png",
        "params.yaml": "lr: 0.1\n",
        "dvc.yaml": "stages:\n  s:\n    cmd: 'true'\n    params: [lr]\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    git("init", "-q", "-b", "main")
    run("dvc", "init", "-q")
    git("add", "-A")
    git("commit", "-qm", "main")
    git("checkout", "-qb", "branch")
    (tmp_path / "params.yaml").write_text("lr: 0.2\n")
    (tmp_path / "reports/tables/d.md").write_text("| Method | NMI |\n| m | 51.00 |\n")
    (tmp_path / "reports/plots/d/methods.png").write_text("png, redrawn")
    out = tmp_path / "changed"
    url = "https://example.org/{path}"
    assert check_metrics.main(["--report", "--figures-dir", str(out), "--figure-url", url]) == 0
    text = capsys.readouterr().out
    assert "**Metrics gate: pass**" in text
    assert "| lr" in text and "0.1" in text and "0.2" in text  # dvc params diff's table
    assert "| m | 51.00 |" in text and "reports/tables/e.md" not in text
    assert "![reports/plots/d/methods.png](https://example.org/reports/plots/d/methods.png)" in text
    assert "reports/plots/e/" not in text
    assert (out / "reports/plots/d/methods.png").read_text() == "png, redrawn"


def test_the_report_holds_the_gate_params_tables_and_figures():
    text = check_metrics.report(
        "**Metrics gate: pass** ...",
        "| Path | Param | HEAD | workspace |",
        {"reports/tables/digits.md": "| Method | NMI |"},
        ["reports/plots/digits/methods.png", "reports/plots/digits/tsne_vanilla.png"],
        "https://example.org/raw/abc/{path}",
    )
    sections = [line for line in text.splitlines() if line.startswith("## ")]
    assert sections == ["## Metrics", "## Parameters", "## Results that changed", "## Figures that changed"]
    assert "| Param |" in text and "### `reports/tables/digits.md`" in text and "| Method | NMI |" in text
    assert "- `reports/plots/digits/tsne_vanilla.png`" in text
    # the methods figure inline, the others listed only
    assert (
        "![reports/plots/digits/methods.png](https://example.org/raw/abc/reports/plots/digits/methods.png)"
        in text
    )
    assert text.count("![") == 1
    quiet = check_metrics.report("gate", "", {}, [], None)
    assert (
        "No parameter changed." in quiet
        and "No results table changed." in quiet
        and "No figure changed." in quiet
    )
