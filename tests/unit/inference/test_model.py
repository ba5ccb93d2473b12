"""dscl.inference.search: exact neighbours, a query never its own neighbour."""

from __future__ import annotations

import numpy as np
import pytest

from dscl.inference.model import search
from dscl.report.gallery import neighbours


def brute_force(gallery, queries, k, own=None):
    d = np.sqrt(((queries[:, None, :] - gallery[None]) ** 2).sum(-1))
    if own is not None:
        d[np.arange(len(queries)), own] = np.inf
    ids = np.argsort(d, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(d, ids, 1), ids


def test_search_excludes_each_querys_own_row():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 5)).astype(np.float32)
    rows = np.array([3, 17, 0, 39])
    for got, want in (
        (search(x, x, 4, exclude_self=True), brute_force(x, x, 4, own=np.arange(40))),
        (search(x, x[rows], 4, exclude_self=rows), brute_force(x, x[rows], 4, own=rows)),
        (neighbours(x, rows, 4), brute_force(x, x[rows], 4, own=rows)),
        (search(x, x[rows], 4), brute_force(x, x[rows], 4)),
    ):
        np.testing.assert_array_equal(got[1], want[1])
        np.testing.assert_allclose(got[0], want[0], rtol=1e-5, atol=1e-5)
    assert (search(x, x[rows], 1)[1][:, 0] == rows).all()  # without exclusion: itself first


def test_search_rejects_an_exclusion_of_the_wrong_shape():
    x = np.zeros((5, 2), dtype=np.float32)
    with pytest.raises(ValueError, match="one gallery row per query"):
        search(x, x[:2], 1, exclude_self=np.array([0, 1, 2]))
