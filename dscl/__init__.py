"""Deep Spectral Clustering Learning (Law, Urtasun, Zemel, ICML 2017).

The core library: the loss with its closed-form gradient (:mod:`dscl.loss`), test-time
spectral clustering (:mod:`dscl.spectral`) and the evaluation metrics
(:mod:`dscl.metrics`). It needs no DVC: the training log writes DVCLive's files, the one
place it meets DVC's tools.
"""

__version__ = "0.1.0"
