"""Deep Spectral Clustering Learning (Law, Urtasun, Zemel, ICML 2017).

The library, in packages that mirror the pipeline:

* :mod:`dscl.datasets`: download, verify and split the datasets;
* :mod:`dscl.backbones`: the pretrained networks (and :mod:`dscl.images`, their input);
* :mod:`dscl.objectives`: the DSCL loss with its closed-form gradient
  (:mod:`dscl.objectives.dscl`) and the baselines' objectives;
* :mod:`dscl.training`: training one method (last layer or all layers);
* :mod:`dscl.evaluation`: spectral clustering (Algorithm 2), k-means, NMI, Recall@K,
  MAP@R, intervals and model selection;
* :mod:`dscl.inference`: a trained model on new images, and the ``dscl`` command;
* :mod:`dscl.report` and :mod:`dscl.experiments`: tables, figures, the ablation, the
  visual demo.

The top level holds what they share: :mod:`dscl.config` (params.yaml's schema),
:mod:`dscl.methods` (the methods compared), :mod:`dscl.layout` (the pipeline's file
names) and the plumbing. It needs no DVC: the training log writes DVCLive's files, the
one place it meets DVC's tools.
"""

__version__ = "0.1.0"
