"""The figures published in Tables 1-3 of [1] for the methods this project runs.

Keys: dataset -> (method, variant) -> metric -> value in percent. Methods are named as
in params.yaml: ``vanilla`` (Vanilla GoogLeNet), ``softmax`` (Softmax regression),
``dscl_e2e`` (Ours, end-to-end), ``dscl_last`` (Ours, last layer), and the baselines the
paper copies from Song et al. (2017), all layers fine-tuned, evaluated without spectral
clustering: ``triplet_e2e`` (Triplet s.h.), ``lifted_e2e`` (Lifted struct), ``npairs_e2e``
(Npairs) and ``facility_e2e`` (NMI-based, the facility-location loss).

References
----------
.. [1] Law, Urtasun, Zemel. Deep Spectral Clustering Learning. ICML 2017.
"""

from __future__ import annotations

__all__ = ["REPORTED", "reported"]

_CUB_CARS = ("nmi", "recall@1", "recall@2", "recall@4", "recall@8")
_SOP = ("nmi", "recall@1", "recall@10", "recall@100")
_ROWS = [
    ("vanilla", "with_sc"),
    ("vanilla", "without_sc"),
    ("softmax", "with_sc"),
    ("softmax", "without_sc"),
    ("dscl_e2e", "with_sc"),
    ("dscl_e2e", "without_sc"),
    ("dscl_last", "with_sc"),
    ("dscl_last", "without_sc"),
    ("triplet_e2e", "without_sc"),
    ("lifted_e2e", "without_sc"),
    ("npairs_e2e", "without_sc"),
    ("facility_e2e", "without_sc"),
]

_TABLES = {
    "cub200": (
        _CUB_CARS,
        [  # Table 1
            (53.53, 42.56, 55.55, 67.86, 78.39),
            (50.28, 40.11, 53.17, 66.02, 76.59),
            (55.91, 45.49, 58.64, 70.65, 79.17),
            (55.74, 46.00, 58.03, 69.32, 78.28),
            (58.12, 49.78, 62.56, 73.55, 82.78),
            (56.99, 47.57, 59.66, 71.57, 81.28),
            (59.16, 53.22, 66.09, 76.70, 85.33),
            (56.87, 50.08, 62.24, 73.38, 82.38),
            (55.38, 42.59, 55.03, 66.44, 77.23),
            (56.50, 43.57, 56.55, 68.59, 79.63),
            (57.24, 45.37, 58.41, 69.51, 79.49),
            (59.23, 48.18, 61.44, 71.83, 81.92),
        ],
    ),
    "cars196": (
        _CUB_CARS,
        [  # Table 2
            (44.53, 35.37, 47.32, 60.60, 71.69),
            (47.99, 35.56, 47.27, 59.37, 72.16),
            (53.13, 50.11, 60.49, 71.68, 80.14),
            (52.13, 48.75, 58.52, 70.97, 78.37),
            (58.04, 59.37, 71.25, 80.62, 88.32),
            (56.08, 57.08, 69.23, 79.39, 87.46),
            (64.25, 73.07, 82.19, 89.01, 92.99),
            (61.12, 67.54, 77.77, 85.74, 90.95),
            (53.35, 51.54, 63.78, 73.52, 82.41),
            (56.88, 52.98, 65.70, 76.01, 84.27),
            (57.79, 53.90, 66.76, 77.75, 86.35),
            (59.04, 58.11, 70.64, 80.27, 87.81),
        ],
    ),
    "sop": (
        _SOP,
        [  # Table 3
            (56.01, 44.09, 61.32, 77.82),
            (55.32, 43.73, 60.84, 76.54),
            (63.53, 51.95, 69.83, 85.36),
            (63.10, 51.65, 69.75, 85.32),
            (89.40, 67.59, 83.71, 93.25),
            (88.70, 64.52, 81.53, 92.35),
            (88.75, 65.30, 81.50, 92.40),
            (86.95, 64.90, 78.05, 91.50),
            (89.46, 66.67, 82.39, 91.85),
            (88.65, 62.46, 80.81, 91.93),
            (89.37, 66.41, 83.24, 93.00),
            (89.48, 67.02, 83.65, 93.23),
        ],
    ),
}

assert all(len(rows) == len(_ROWS) for _, rows in _TABLES.values())

REPORTED: dict[str, dict[tuple[str, str], dict[str, float]]] = {
    ds: {row: dict(zip(metrics, values)) for row, values in zip(_ROWS, table)}
    for ds, (metrics, table) in _TABLES.items()
}


def reported(dataset: str, method: str, variant: str) -> dict[str, float] | None:
    """The paper's figures for one row, or None where the paper has none."""
    return REPORTED.get(dataset, {}).get((method, variant))
