"""Training: the model (:mod:`~dscl.training.model`), optimisation
(:mod:`~dscl.training.optim`), batch sampling (:mod:`~dscl.training.sampling`), one update
step (:mod:`~dscl.training.steps`), data parallelism (:mod:`~dscl.training.distributed`),
the loops (:mod:`~dscl.training.loops`), and training one method of the comparison
(:mod:`~dscl.training.fit`).

The loops know nothing of files or DVC; :func:`~dscl.training.fit.train_method` reads the
pipeline's prepared dataset and cached features.
"""

from dscl._lazy import lazy_names

# where each public name lives; imported on first use, so that ``dscl.config`` can read
# the option classes of ``dscl.training.optim`` without importing torch
_HOMES = {
    "EmbeddingNet": "model",
    "OptimizerConfig": "optim",
    "make_optimizer": "optim",
    "parameter_groups": "optim",
    "BatchSampler": "sampling",
    "sample_batch": "sampling",
    "chunked_step": "steps",
    "freeze_batchnorm": "steps",
    "softmax_step": "steps",
    "train_last_layer": "loops",
    "train_on_images": "loops",
}
__all__ = list(_HOMES)

__getattr__ = lazy_names("dscl.training", _HOMES)
