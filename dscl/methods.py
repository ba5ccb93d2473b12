"""The methods the pipeline compares: a registry from a method's name to what it learns
and the objective it minimises.

A method learns ``nothing`` (the pretrained feature is the embedding), the
``last_layer`` (on cached features) or ``all_layers`` (on images, with the chunked update
of Section 4.1 of [1]). Its objective is ``"softmax"`` (classification), None (vanilla),
or a batch objective of :mod:`dscl.objectives`: DSCL or a baseline.

Importing this module does not import torch.

References
----------
.. [1] Law, Urtasun, Zemel. Deep Spectral Clustering Learning. ICML 2017.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from dscl.objectives import OBJECTIVES
from dscl.registry import Registry

__all__ = ["LEARNS", "METHODS", "Learns", "Method", "get_method"]

Learns = Literal["nothing", "last_layer", "all_layers"]
LEARNS: tuple[str, ...] = get_args(Learns)


@dataclass(frozen=True)
class Method:
    """One method of the comparison.

    Attributes
    ----------
    name : str
        As ``params.yaml`` names it (``dscl_last``, ``triplet_e2e``, ...).
    learns : {"nothing", "last_layer", "all_layers"}
        What training changes; the saved model record says the same (``learns``).
    objective : str or None
        A key of :data:`dscl.objectives.OBJECTIVES`, ``"softmax"`` or None (vanilla).
    title : str
        As the tables print it.
    """

    name: str
    learns: Learns
    objective: str | None
    title: str

    @property
    def normalized(self) -> bool:
        """Whether the objective sees l2-normalised embeddings (then so does evaluation)."""
        return self.objective in OBJECTIVES and OBJECTIVES.get(self.objective).normalized


_TITLES = {
    "dscl": "Ours",
    "triplet": "Triplet s.h.",
    "lifted": "Lifted struct",
    "npairs": "Npairs",
    "multisim": "Multi-similarity",
    "facility": "NMI-based",  # the paper's name of the row (Song et al. 2017)
    "proxyanchor": "Proxy-Anchor",
}

METHODS: Registry[Method] = Registry("method")
METHODS.register("vanilla", Method("vanilla", "nothing", None, "Vanilla backbone"))
METHODS.register("softmax", Method("softmax", "all_layers", "softmax", "Softmax regression"))
for _objective, _title in _TITLES.items():
    METHODS.register(
        f"{_objective}_last", Method(f"{_objective}_last", "last_layer", _objective, f"{_title} (last layer)")
    )
    METHODS.register(
        f"{_objective}_e2e", Method(f"{_objective}_e2e", "all_layers", _objective, f"{_title} (end-to-end)")
    )


def get_method(name: str) -> Method:
    """The registered method ``name``; ValueError naming the valid ones otherwise."""
    return METHODS.get(name)
