"""Experiments beyond the tables: the ablation of one method's settings
(:mod:`~dscl.experiments.ablation`) and the paper's visual demo on a simplex
(:mod:`~dscl.experiments.simplex`)."""
