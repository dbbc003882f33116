"""Datasets: the PASCAL VOC 2012 reader (:mod:`vitaff.data.voc`) and the embedded synthetic
VOC-layout dataset (:mod:`vitaff.data.synthetic`)."""
