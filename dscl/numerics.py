"""The numeric environment of a run: thread counts fixed, deterministic algorithms where
torch has them, and a record of where a figure was made.

A float result depends on more than its seeds: the number of threads that split a
reduction, the instruction set a kernel was dispatched to (ATen's ``default`` / ``AVX2``
/ ``AVX512``, MKL's and oneDNN's own dispatch), the device and the library versions.
:func:`configure` fixes what can be fixed in the process; :func:`environment` records
the rest, so that every metrics file says what it was computed with (the docs'
"Reproducibility" page measures how far each of these moves the figures).
"""

from __future__ import annotations

import os
import platform
from functools import cache

__all__ = ["ENVIRONMENT_VARIABLES", "configure", "cpu_model", "environment"]

# Variables that change which kernels run, recorded when they are set.
ENVIRONMENT_VARIABLES = (
    "ATEN_CPU_CAPABILITY",  # ATen's vectorised kernels: default | avx2 | avx512 ...
    "MKL_CBWR",  # MKL's conditional numerical reproducibility (COMPATIBLE, AVX2, ...)
    "MKL_ENABLE_INSTRUCTIONS",
    "ONEDNN_MAX_CPU_ISA",  # oneDNN's highest instruction set (convolutions)
)


def configure(threads: int, *, deterministic: bool = True) -> None:
    """Fix the intra-op threads of torch (and faiss' OpenMP threads) to ``threads``, and,
    with ``deterministic`` and a GPU present, ask torch for deterministic algorithms where
    it has them (``torch.use_deterministic_algorithms(warn_only=True)``: an operation
    without one keeps its fast kernel and says so once), cuDNN's included; cuBLAS needs a
    fixed workspace for that, set here unless the environment sets it.

    Parameters
    ----------
    threads : int
        >= 1.
    deterministic : bool
    """
    if int(threads) < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    import torch

    torch.set_num_threads(int(threads))
    try:
        import faiss

        faiss.omp_set_num_threads(int(threads))
    except ImportError:  # faiss is optional for the library's mathematics
        pass
    if deterministic and torch.cuda.is_available():
        # On the CPU the kernels this project runs repeat bit for bit at a fixed thread
        # count (the docs' rerun measurements), and the switch costs 1.2 s of imports
        # (torch._inductor) in every stage process: it is asked for where it matters.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True


@cache
def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux; what ``platform`` knows elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(device=None) -> dict:
    """What a figure was computed with: threads, the CPU and the instruction set ATen
    dispatches to, the device, whether deterministic algorithms were asked for, and the
    versions of torch, NumPy and faiss; and each of :data:`ENVIRONMENT_VARIABLES` that is
    set.

    Parameters
    ----------
    device : torch.device or str, optional
        The device the work ran on (a CUDA device is recorded with its name).
    """
    import numpy as np
    import torch

    where = str(device) if device is not None else "cpu"
    if device is not None and torch.device(device).type == "cuda":
        where = f"cuda ({torch.cuda.get_device_name(torch.device(device))})"
    try:
        import faiss

        faiss_version = str(faiss.__version__)
    except ImportError:
        faiss_version = None
    env = {
        "threads": torch.get_num_threads(),
        "cpu": cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "device": where,
        "deterministic": torch.are_deterministic_algorithms_enabled(),
        "torch": str(torch.__version__),  # a str subclass that weights_only loading refuses
        "numpy": str(np.__version__),
        "faiss": faiss_version,
    }
    env.update({k: os.environ[k] for k in ENVIRONMENT_VARIABLES if os.environ.get(k)})
    return env
