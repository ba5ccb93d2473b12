"""Evaluation: what the pipeline measures of an embedding.

The test protocol (:mod:`~dscl.evaluation.protocol`: NMI as the mean over k-means seeds,
with and without spectral clustering) on top of the metrics
(:mod:`~dscl.evaluation.metrics`: NMI, Recall@K, MAP@R), spectral clustering
(:mod:`~dscl.evaluation.spectral`, Algorithm 2 of the paper), k-means
(:mod:`~dscl.evaluation.kmeans`), nearest neighbours (:mod:`~dscl.evaluation.neighbors`),
intervals over test classes (:mod:`~dscl.evaluation.bootstrap`) and model selection on
validation classes (:mod:`~dscl.evaluation.selection`).

Importing the package imports none of them: a stage imports the modules it uses.
"""
