"""The numeric environment: thread counts fixed, deterministic algorithms, and a record
of where a figure was made that a model file can carry."""

from __future__ import annotations

import io

import pytest
import torch

from dscl import numerics


@pytest.fixture
def restore_torch():
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic)


def test_configure_fixes_threads_and_asks_for_deterministic_algorithms(restore_torch):
    numerics.configure(1, deterministic=True)
    # deterministic algorithms are asked for where a GPU is present
    assert torch.get_num_threads() == 1
    assert torch.are_deterministic_algorithms_enabled() == torch.cuda.is_available()
    env = numerics.environment()
    assert env["threads"] == 1 and env["deterministic"] == torch.cuda.is_available()
    numerics.configure(2, deterministic=False)
    assert numerics.environment()["threads"] == 2
    with pytest.raises(ValueError, match="threads must be >= 1, got 0"):
        numerics.configure(0)


def test_the_environment_is_plain_data_a_model_file_can_carry(monkeypatch):
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "default")
    monkeypatch.delenv("MKL_CBWR", raising=False)
    env = numerics.environment(torch.device("cpu"))
    assert {"threads", "cpu", "cpu_capability", "device", "torch", "numpy", "faiss"} <= set(env)
    assert env["ATEN_CPU_CAPABILITY"] == "default" and "MKL_CBWR" not in env
    assert all(type(v) in (str, int, bool, type(None)) for v in env.values()), env
    buffer = io.BytesIO()
    torch.save({"record": {"environment": env}}, buffer)
    buffer.seek(0)
    assert torch.load(buffer, weights_only=True)["record"]["environment"] == env
