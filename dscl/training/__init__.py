"""Training: the model (:mod:`~dscl.training.model`) and the record saved with it
(:mod:`~dscl.training.record`), optimisation (:mod:`~dscl.training.optim`), batch sampling
(:mod:`~dscl.training.sampling`), one update step (:mod:`~dscl.training.steps`), data
parallelism (:mod:`~dscl.training.distributed`), the loops (:mod:`~dscl.training.loops`),
one strategy per kind of learning (:mod:`~dscl.training.strategies`, whose networks are
:mod:`~dscl.training.kinds`), and training one
method of the comparison (:mod:`~dscl.training.job`, :mod:`~dscl.training.fit`).

The loops know nothing of files or DVC; :func:`~dscl.training.fit.train_method` reads the
pipeline's prepared dataset and cached features.
"""

from dscl._lazy import lazy_names

# where each public name lives; imported on first use, so that the modules that need no
# torch (the model record, the optimiser's options) are read without it
_HOMES = {
    "EmbeddingNet": "model",
    "ModelRecord": "record",
    "MODEL_FORMAT": "record",
    "OptimizerConfig": "optim",
    "make_optimizer": "optim",
    "parameter_groups": "optim",
    "BatchSampler": "sampling",
    "sample_batch": "sampling",
    "chunked_step": "steps",
    "freeze_batchnorm": "steps",
    "summed_step": "steps",
    "LoopOptions": "loops",
    "train_last_layer": "loops",
    "train_on_images": "loops",
    "strategy_for": "strategies",
}
__all__ = list(_HOMES)

__getattr__ = lazy_names("dscl.training", _HOMES)
