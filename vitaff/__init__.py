"""vitaff: weakly-supervised semantic segmentation from Vision Transformer relevance seeds.

Stages (one module each, in the order of the method):

* :mod:`vitaff.data` -- PASCAL VOC 2012 reader and the embedded synthetic VOC-layout dataset;
* :mod:`vitaff.models` / :mod:`vitaff.explain` -- ViT and hybrid ViT with relevance propagation
  (Chefer et al., "Transformer Interpretability Beyond Attention Visualization", CVPR 2021);
* :mod:`vitaff.crf`, :mod:`vitaff.affinity`, :mod:`vitaff.random_walk` -- AffinityNet refinement
  (Ahn & Kwak, "Learning Pixel-level Semantic Affinity with Image-level Supervision", CVPR 2018);
* :mod:`vitaff.metrics` -- the one mIoU implementation every score uses.

Importing the package does not import torch, so the Snakefile and dry runs stay fast.
"""

__version__ = "0.1.0"
