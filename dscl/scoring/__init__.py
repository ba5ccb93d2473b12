"""What an embedding scores, on validation classes during training and on test classes
after: spectral clustering (:mod:`~dscl.scoring.spectral`, Algorithm 2 of the paper),
k-means (:mod:`~dscl.scoring.kmeans`), nearest neighbours (:mod:`~dscl.scoring.neighbors`),
NMI (:mod:`~dscl.scoring.nmi`), the per-query retrieval quantities
(:mod:`~dscl.scoring.retrieval`), both variants' scores (:mod:`~dscl.scoring.scores`),
and model selection on validation classes (:mod:`~dscl.scoring.selection`).

Training depends on these modules, and the test evaluation (:mod:`dscl.evaluation`) builds
on them; a change here re-runs both. Importing the package imports none of them.
"""
