"""The training log: curves and a summary through DVCLive, resumable."""

from __future__ import annotations

from pathlib import Path

from dscl.atomic import write_text
from dscl.errors import DSCLError
from dscl.layout import curves_dir, loss_curve

__all__ = ["LiveLog", "NoLog", "truncate_curves"]


class LiveLog:
    """Training curves through DVCLive (``dvcyaml=False``: dvc.yaml declares them).

    A run resumed from the checkpoint of step ``resume_step`` first drops the curve
    points logged after it (by the interrupted run), so no step is written twice.
    """

    def __init__(self, directory: Path, resume_step: int | None):
        from dvclive import Live

        if resume_step is not None:
            truncate_curves(curves_dir(directory), resume_step)
        try:
            resume = resume_step is not None
            self.live = Live(str(directory), dvcyaml=False, save_dvc_exp=False, resume=resume)
        except Exception as err:  # DVCLive reads the git revision: a repository without a commit fails
            if "Empty git repo" not in str(err):
                raise
            raise DSCLError(
                "the training log (DVCLive) needs the project's git repository to hold a commit: "
                "commit once (git add -A && git commit -m start), then run again"
            ) from None

    def __call__(self, step: int, values: dict) -> None:
        self.live.step = step
        for name, value in values.items():
            self.live.log_metric(name, value)
        self.live.next_step()

    def summary(self, values: dict) -> None:
        """Final values of the run, written to the summary ``metrics.json``."""
        for name, value in values.items():
            self.live.summary[name] = value

    def close(self) -> None:
        self.live.end()
        curve = loss_curve(curves_dir(self.live.dir))
        if not curve.exists():  # nothing was learned (vanilla): an empty curve
            write_text(curve, "step\tloss\n")


class NoLog:
    """The logger of processes other than rank 0."""

    def __call__(self, step: int, values: dict) -> None:
        pass

    def summary(self, values: dict) -> None:
        pass

    def close(self) -> None:
        pass


def truncate_curves(folder: Path, last_step: int) -> None:
    """Drop the rows after ``last_step`` from every DVCLive ``.tsv`` curve in ``folder``."""
    for curve in sorted(folder.rglob("*.tsv")) if folder.is_dir() else []:
        lines = curve.read_text().splitlines()
        if not lines:
            continue
        step = lines[0].split("\t").index("step")
        kept = [lines[0]] + [ln for ln in lines[1:] if int(ln.split("\t")[step]) <= last_step]
        if len(kept) < len(lines):
            write_text(curve, "\n".join(kept) + "\n")
