"""Using a trained model: the model object (:mod:`~dscl.inference.model`: embed
photographs, search, cluster), reading a model file and embedding a test set
(:mod:`~dscl.inference.embedding`), and the ``dscl`` command
(:mod:`~dscl.inference.command`).

``from dscl.inference import TrainedModel`` works as well as the full path; the names
are imported on first use, so that ``dscl --help`` does not wait for torch.
"""

from dscl._lazy import lazy_names

# where each public name lives (imported on first use)
_HOMES = {
    "TrainedModel": "model",
    "EmbeddedFiles": "model",
    "ImageError": "model",
    "cluster": "model",
    "search": "model",
    "describe": "model",
    "ModelFileError": "embedding",
    "load_model": "embedding",
}
__all__ = list(_HOMES)

__getattr__ = lazy_names("dscl.inference", _HOMES)
