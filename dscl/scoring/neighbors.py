"""Exact nearest neighbours: of every point among the others, computed in chunks (the
retrieval metrics), and of queries in a gallery (:func:`search`: the galleries, ``dscl
search``)."""

from __future__ import annotations

from collections.abc import Iterator

import faiss
import numpy as np
import torch

from dscl._arrays import to_numpy32
from dscl.scoring.kmeans import faiss_gpu_available

__all__ = ["iter_neighbors", "search"]


def _faiss_chunks(x: torch.Tensor, k: int, chunk: int) -> Iterator[tuple[int, np.ndarray]]:
    data = to_numpy32(x)
    index = faiss.IndexFlatL2(data.shape[1])
    if faiss_gpu_available():
        index = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, index)
    index.add(data)
    for start in range(0, data.shape[0], chunk):
        stop = min(start + chunk, data.shape[0])
        # One neighbour more than asked for: the query itself, removed below. With
        # duplicate points the query may be ranked after a copy of itself, or pushed out.
        _, ids = index.search(data[start:stop], k + 1)  # (m, k + 1)
        own = ids == np.arange(start, stop)[:, None]
        own[~own.any(axis=1), -1] = True  # query not among them: drop the farthest
        yield start, ids[~own].reshape(stop - start, k)


def _torch_chunks(x: torch.Tensor, k: int, chunk: int) -> Iterator[tuple[int, np.ndarray]]:
    x = x.float()
    sq = x.square().sum(dim=1)  # (n,)
    for start in range(0, x.shape[0], chunk):
        stop = min(start + chunk, x.shape[0])
        d2 = sq[start:stop, None] - 2.0 * (x[start:stop] @ x.T) + sq[None, :]  # (m, n)
        rows = torch.arange(stop - start, device=x.device)
        d2[rows, rows + start] = float("inf")  # the query itself is excluded exactly
        yield start, d2.topk(k, dim=1, largest=False).indices.cpu().numpy()


def iter_neighbors(
    x: torch.Tensor, k: int, chunk: int = 4096, backend: str = "auto"
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(start, ids)`` over query chunks: ``ids[i]`` are the k nearest neighbours
    (squared Euclidean distance, closest first) of point ``start + i``, itself excluded.

    Memory is bounded by ``chunk * n`` distances, never n x n.

    Parameters
    ----------
    x : Tensor of shape (n, d)
    k : int
        Neighbours per point, 1 <= k < n.
    chunk : int
        Queries per chunk.
    backend : {"auto", "faiss", "torch"}
        "faiss" uses an exact flat index (on GPU with faiss' GPU build); "torch" runs
        matrix products on the tensor's device. "auto" picks faiss, except for a CUDA
        tensor when faiss has no GPU support.
    """
    n = x.shape[0]
    if not 1 <= k < n:
        raise ValueError(f"k must be in [1, {n - 1}] for {n} points, got {k}")
    if backend == "auto":
        backend = "torch" if (x.is_cuda and not faiss_gpu_available()) else "faiss"
    if backend == "faiss":
        return _faiss_chunks(x, k, chunk)
    if backend == "torch":
        return _torch_chunks(x, k, chunk)
    raise ValueError(f"backend must be one of 'auto', 'faiss', 'torch', got {backend!r}")


def search(gallery: np.ndarray, queries: np.ndarray, k: int, exclude_self: bool | np.ndarray = False):
    """The ``k`` nearest gallery rows of each query (exact, squared Euclidean, faiss'
    flat index as the evaluation uses). ``exclude_self``: True when the queries are the
    gallery's own rows, in order; or the gallery row of each query (an integer array of
    shape (q,)). Either way a query is not its own neighbour.

    Returns
    -------
    ``(distances, ids)``, each (q, k): Euclidean distances (ascending) and gallery rows.
    """
    g = np.ascontiguousarray(gallery, dtype=np.float32)
    q = np.ascontiguousarray(queries, dtype=np.float32)
    own = np.arange(len(q)) if exclude_self is True else None
    if exclude_self is not True and exclude_self is not False:
        own = np.asarray(exclude_self, dtype=np.int64)
        if own.shape != (len(q),):
            raise ValueError(f"exclude_self must give one gallery row per query, got shape {own.shape}")
    limit = len(g) - (0 if own is None else 1)
    if not 1 <= k <= limit:
        raise ValueError(f"k must be in [1, {limit}] (the gallery has {len(g)} images), got {k}")
    if g.ndim != 2 or q.ndim != 2 or g.shape[1] != q.shape[1]:
        raise ValueError(f"gallery (n, d) and queries (q, d) must share d, got {g.shape} and {q.shape}")
    index = faiss.IndexFlatL2(g.shape[1])
    index.add(g)
    d2, ids = index.search(q, k + (0 if own is None else 1))
    if own is not None:  # drop each query's own row (wherever ties put it)
        keep = ids != own[:, None]
        d2 = np.stack([row[m][:k] for row, m in zip(d2, keep)])
        ids = np.stack([row[m][:k] for row, m in zip(ids, keep)])
    return np.sqrt(np.clip(d2, 0, None)), ids
