"""Embedded synthetic dataset in the exact PASCAL VOC 2012 layout (the pipeline's default data).

No paper step: this module stands in for PASCAL VOC 2012 (Everingham et al., IJCV 2010,
http://host.robots.ox.ac.uk/pascal/VOC/voc2012/) when the real data cannot be downloaded. It is
built so that the problem the study solves is present (see ``docs/reference.md``, "The embedded synthetic dataset"):

* each image holds 1..``max_objects`` objects (sometimes two of one class) on a cluttered,
  textured background with non-discriminative distractor patches;
* an object's class is carried ONLY by a small, off-centre *discriminative part* (a class-specific
  pattern on ~10-20 % of the object's area), so explanation seeds (Chefer et al., CVPR 2021) that
  fire on what tells classes apart are incomplete;
* object *bodies* carry one coherent texture each (an oriented grating of one orientation and
  period), drawn from a pool SHARED by all classes: the body says "object, not background" but
  not which class, so a classifier must use the part, while learned pixel affinity (Ahn & Kwak,
  CVPR 2018, AffinityNet) can learn "same body texture = same object" and spread the part's seed;
* with ``body_textures="class"`` (the pipeline's embedded default) every body instead carries its
  class's own texture (:data:`CLASS_BODY_TEXTURES`), and ``JPEGImagesPartHidden/`` holds each scene
  with its parts painted over by their bodies, for the classifier's part-hiding augmentation
  (:func:`vitaff.classifier.hide_parts`): otherwise the class is readable from the part alone and a
  classifier trained from scratch never looks at the body;
* bodies share the background's colour statistics (same per-scene palette, mean colour pulled to
  the local background colour) and meet it at low-contrast edges, so a dense CRF with an RGB
  bilateral kernel (Kraehenbuehl & Koltun, NeurIPS 2011) cannot recover them from colour alone,
  as on VOC, where a CRF alone falls well short of the affinity random walk.

Files written under ``<root>/VOCdevkit/VOC2012`` (SPEC section 7)::

    JPEGImages/<id>.jpg                 RGB JPEG (fixed quality, no EXIF/timestamps)
    SegmentationClass/<id>.png          palette PNG, VOC colour map, 0..20, 255 = void band
    SegmentationObject/<id>.png         palette PNG, instance index 1..n, 255 = void band
    SegmentationPart/<id>.png           (not VOC; ``write_parts``) instance index of the part pixels
    JPEGImagesPartHidden/<id>.jpg       (not VOC; ``write_parts``) the scene with its parts painted over
    Annotations/<id>.xml                VOC XML, one <object> per visible instance
    ImageSets/Segmentation/{train,val,trainval}.txt
    ImageSets/Main/{train,val,trainval}.txt
    synthetic.json                      generator version, config and summary

Ids have the VOC form ``YYYY_NNNNNN`` with the fictitious years 9000 (train) and 9001 (val), e.g.
``9000_000001``: 11 characters like real ids (psa/IRN-style code that slices or int-encodes ids
keeps working) and never equal to a real VOC id (years 2007-2012).

Every image is rendered from its own generator ``numpy.random.default_rng([seed, split, index])``,
so image ``i`` of a split does not depend on the split sizes. Same config -> byte-identical files
(on the same numpy/Pillow build). Generation is atomic: everything is written into a temporary
sibling ``<root>/.VOCdevkit.tmp-*`` that is renamed to ``<root>/VOCdevkit`` at the very end.
"""

# The package splits along the generator's seams: settings (config), textures and patterns
# (textures), scene layout (scene), file writing (files), command line (cli).
from vitaff.data.voc import CLASS_INDEX, VOC_CLASSES, voc_colormap
from vitaff.data.synthetic.config import (
    BODY_TEXTURES,
    CLASS_BODY_TEXTURES,
    GENERATOR_VERSION,
    PART_COLOUR_AXES,
    PART_HIDDEN_DIR,
    PART_PATTERNS,
    SPLITS,
    SyntheticConfig,
    make_id,
)
from vitaff.data.synthetic.scene import render_scene
from vitaff.data.synthetic.files import generate_voc, is_complete
from vitaff.data.synthetic.cli import main

__all__ = [
    "VOC_CLASSES",
    "CLASS_INDEX",
    "PART_COLOUR_AXES",
    "SPLITS",
    "GENERATOR_VERSION",
    "PART_PATTERNS",
    "BODY_TEXTURES",
    "CLASS_BODY_TEXTURES",
    "PART_HIDDEN_DIR",
    "SyntheticConfig",
    "voc_colormap",
    "render_scene",
    "generate_voc",
    "is_complete",
    "make_id",
    "main",
]

