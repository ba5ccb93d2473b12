"""Writes (dscl.atomic): the umask's permissions, leftovers of a killed writer removed by
the next one, a replaced folder never absent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from dscl import atomic
from dscl.atomic import atomic_dir, replace_dir, save_npy, write_text


@pytest.fixture
def umask():
    def set_(mask: int) -> None:
        os.umask(mask)
        atomic._UMASK = None  # read again

    old = os.umask(0o022)
    os.umask(old)
    yield set_
    os.umask(old)
    atomic._UMASK = None


@pytest.mark.parametrize(
    "mask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o002, 0o664, 0o775), (0o077, 0o600, 0o700)]
)
def test_outputs_get_the_umask_permissions(tmp_path, umask, mask, file_mode, dir_mode):
    """mkstemp and mkdtemp create 0600 and 0700 whatever the umask: a shared DVC cache or
    a colleague could not read the models and features."""
    umask(mask)
    write_text(tmp_path / "a.txt", "x")
    save_npy(tmp_path / "a.npy", np.zeros(3))
    with atomic_dir(tmp_path / "folder") as tmp:
        (tmp / "inside.txt").write_text("y")
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == file_mode
    assert (tmp_path / "a.npy").stat().st_mode & 0o777 == file_mode
    assert (tmp_path / "folder").stat().st_mode & 0o777 == dir_mode


def test_what_a_killed_writer_left_is_removed_by_the_next(tmp_path):
    """SIGKILL inside ``atomic_dir`` and ``atomic_path`` leaves hidden temporaries; the
    next write of the same path removes them, and leaves those of a live writer alone."""
    code = (
        "import os, sys, time\n"
        "from dscl.atomic import atomic_dir, atomic_path\n"
        f"with atomic_dir({str(tmp_path / 'out')!r}) as d, atomic_path({str(tmp_path / 'f.txt')!r}) as f:\n"
        "    (d / 'x').write_text('half'); f.write_text('half')\n"
        "    print('ready', flush=True); time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    left = sorted(p.name for p in tmp_path.iterdir())
    assert len(left) == 2 and all(n.endswith(".tmp") and n.startswith((".out.", ".f.txt.")) for n in left)
    live = tmp_path / f".out.{os.getpid()}.abcd.tmp"  # this process's: alive
    live.mkdir()
    with atomic_dir(tmp_path / "out") as d:
        (d / "x").write_text("whole")
    write_text(tmp_path / "f.txt", "whole")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["out", "f.txt", live.name])


def test_a_replaced_folder_is_never_absent(tmp_path):
    """A reader looking while the folder is replaced, over and over, always finds it."""
    target = tmp_path / "out"
    with atomic_dir(target) as d:
        (d / "v").write_text("0")
    missing = []
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            if not target.is_dir():
                missing.append(time.perf_counter())

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for i in range(1, 200):
            with atomic_dir(target) as d:
                (d / "v").write_text(str(i))
    finally:
        stop.set()
        watcher.join()
    assert (target / "v").read_text() == "199"
    assert missing == [] or not atomic._exchange_available(), f"absent {len(missing)} times"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_replace_dir_puts_a_folder_where_there_was_none(tmp_path):
    new = tmp_path / "new"
    new.mkdir()
    (new / "a").write_text("1")
    replace_dir(new, tmp_path / "out")
    assert (tmp_path / "out/a").read_text() == "1" and not new.exists()
