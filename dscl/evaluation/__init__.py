"""The test evaluation: what the tables report of a test embedding.

The test protocol (:mod:`~dscl.evaluation.protocol`: NMI as the mean over k-means seeds,
with and without spectral clustering), the table of test metrics
(:mod:`~dscl.evaluation.metrics`) and the intervals over test classes
(:mod:`~dscl.evaluation.bootstrap`). What an embedding's scores are made of (Algorithm 2,
k-means, neighbours, NMI, the per-query retrieval quantities) is :mod:`dscl.scoring`,
which training's validation computes too: a change here re-runs evaluations and reports,
never a training.

Importing the package imports none of them: a stage imports the modules it uses.
"""
