"""Softmax regression: cross-entropy over the training classes, the classification
baseline of Tables 1-3 ("GoogLeNet features fine-tuned for classification", Section 4.2
of [1]).

Its parameters live in :class:`SoftmaxClassifier`, a module the objective ``softmax`` of
:mod:`dscl.objectives` binds to the training classes of a run (as Proxy-Anchor's proxies):
the class scores are the embedding itself where its dimension is the number of classes
(the paper's setting: the last layer is the classifier), otherwise a learned linear map of
it. Its loss is a mean over examples, so the update of all layers back-propagates each
chunk's share of it directly (:func:`dscl.training.steps.summed_step`) instead of
gathering the batch's embeddings first.

References
----------
.. [1] Law, Urtasun, Zemel. Deep Spectral Clustering Learning. ICML 2017.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["SoftmaxClassifier"]


class SoftmaxClassifier(nn.Module):
    """Cross-entropy of the class scores of embeddings over the classes ``class_ids``.

    Parameters
    ----------
    class_ids : array-like of int
        The training classes (any ids, kept sorted); a label outside them is an error.
    embedding_dim : int
        The embedding's dimension: the scores themselves where it is the number of
        classes, otherwise mapped to them by a learned linear layer.
    """

    def __init__(self, class_ids, embedding_dim: int):
        super().__init__()
        ids = torch.as_tensor(sorted({int(c) for c in class_ids}), dtype=torch.long)
        self.register_buffer("class_ids", ids)
        self.classifier = nn.Linear(int(embedding_dim), len(ids)) if int(embedding_dim) != len(ids) else None

    def targets(self, labels: Tensor) -> Tensor:
        """The class index (0..C-1) of each label."""
        labels = labels.to(self.class_ids.device)
        targets = torch.searchsorted(self.class_ids, labels).clamp_max(len(self.class_ids) - 1)
        if not bool((self.class_ids[targets] == labels).all()):
            unknown = sorted(set(labels.tolist()) - set(self.class_ids.tolist()))
            raise ValueError(f"labels {unknown[:5]} are not among the classifier's classes")
        return targets

    def summed(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        """The sum of the examples' cross-entropies (shape ()), in float32."""
        scores = embeddings if self.classifier is None else self.classifier(embeddings)
        return nn.functional.cross_entropy(scores.float(), self.targets(labels), reduction="sum")

    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        """The mean cross-entropy of a batch (n, d) with labels (n,) among ``class_ids``."""
        return self.summed(embeddings, labels) / embeddings.shape[0]
