"""The figures published in Tables 1-3 of [1] for the methods this project runs.

Keys: dataset -> (method, variant) -> metric -> value in percent. Methods are named as
in params.yaml: ``vanilla`` (Vanilla GoogLeNet), ``softmax`` (Softmax regression),
``dscl_e2e`` (Ours, end-to-end), ``dscl_last`` (Ours, last layer).

References
----------
.. [1] Law, Urtasun, Zemel. Deep Spectral Clustering Learning. ICML 2017.
"""

from __future__ import annotations

__all__ = ["REPORTED", "reported"]

_CUB_CARS = ("nmi", "recall@1", "recall@2", "recall@4", "recall@8")
_SOP = ("nmi", "recall@1", "recall@10", "recall@100")
_ROWS = [("vanilla", "with_sc"), ("vanilla", "without_sc"), ("softmax", "with_sc"),
         ("softmax", "without_sc"), ("dscl_e2e", "with_sc"), ("dscl_e2e", "without_sc"),
         ("dscl_last", "with_sc"), ("dscl_last", "without_sc")]

_TABLES = {
    "cub200": (_CUB_CARS, [  # Table 1
        (53.53, 42.56, 55.55, 67.86, 78.39),
        (50.28, 40.11, 53.17, 66.02, 76.59),
        (55.91, 45.49, 58.64, 70.65, 79.17),
        (55.74, 46.00, 58.03, 69.32, 78.28),
        (58.12, 49.78, 62.56, 73.55, 82.78),
        (56.99, 47.57, 59.66, 71.57, 81.28),
        (59.16, 53.22, 66.09, 76.70, 85.33),
        (56.87, 50.08, 62.24, 73.38, 82.38),
    ]),
    "cars196": (_CUB_CARS, [  # Table 2
        (44.53, 35.37, 47.32, 60.60, 71.69),
        (47.99, 35.56, 47.27, 59.37, 72.16),
        (53.13, 50.11, 60.49, 71.68, 80.14),
        (52.13, 48.75, 58.52, 70.97, 78.37),
        (58.04, 59.37, 71.25, 80.62, 88.32),
        (56.08, 57.08, 69.23, 79.39, 87.46),
        (64.25, 73.07, 82.19, 89.01, 92.99),
        (61.12, 67.54, 77.77, 85.74, 90.95),
    ]),
    "sop": (_SOP, [  # Table 3
        (56.01, 44.09, 61.32, 77.82),
        (55.32, 43.73, 60.84, 76.54),
        (63.53, 51.95, 69.83, 85.36),
        (63.10, 51.65, 69.75, 85.32),
        (89.40, 67.59, 83.71, 93.25),
        (88.70, 64.52, 81.53, 92.35),
        (88.75, 65.30, 81.50, 92.40),
        (86.95, 64.90, 78.05, 91.50),
    ]),
}

REPORTED: dict[str, dict[tuple[str, str], dict[str, float]]] = {
    ds: {row: dict(zip(metrics, values)) for row, values in zip(_ROWS, table)}
    for ds, (metrics, table) in _TABLES.items()
}


def reported(dataset: str, method: str, variant: str) -> dict[str, float] | None:
    """The paper's figures for one row, or None where the paper has none."""
    return REPORTED.get(dataset, {}).get((method, variant))
