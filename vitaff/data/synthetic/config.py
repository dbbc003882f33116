"""Generator settings of the embedded dataset: :class:`SyntheticConfig`, the part patterns,
body textures and ids (see the package docstring for what the scenes are built to show)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

import numpy as np

from vitaff.config import schema_default
from vitaff.data.voc import CLASS_INDEX, VOC_CLASSES


# Class names, indices and the colour map are the VOC reader's (one definition in the project).

# Bump whenever a change alters the rendered pixels or the files, so stale datasets are detected.
# 3: JPEGImagesPartHidden/ (the scenes with every part painted over by its body) beside the parts.
GENERATOR_VERSION = 3
# Class-specific colour axes of the discriminative parts (unit RGB directions, the k-th class
# gets axis k): the part is a pattern of +axis / -axis colours, e.g. red/cyan for the first class.
PART_COLOUR_AXES = np.array([(1, -0.5, -0.5), (-0.5, 1, -0.5), (-0.5, -0.5, 1), (1, 1, -1.2),
                             (-1.2, 1, 1), (1, -1.2, 1), (1, 0.2, -1), (0.2, -1, 1)], dtype=np.float64)

# Discriminative-part patterns; the k-th class of ``SyntheticConfig.classes`` gets pattern k.
PART_PATTERNS: tuple[str, ...] = (
    "rings", "checker", "cross", "dots", "spokes", "chevron", "triangle", "frame",
)
# Shared body-texture pool: (grating period range in pixels, wavy). Class k prefers entry k % 6.
BODY_TEXTURES: tuple[tuple[tuple[float, float], bool], ...] = (
    ((3.5, 4.5), False), ((4.5, 5.7), True), ((5.7, 7.0), False),
    ((3.5, 4.5), True), ((4.5, 5.7), False), ((5.7, 7.0), True),
)
# Class-specific body textures (``body_textures: "class"``): the k-th class of ``classes`` gets
# texture k; each is zero-mean with the shared gratings' energy (std 0.5 / sqrt 2), random
# orientation, period and phase per object, and is never painted on the background.
CLASS_BODY_TEXTURES: tuple[str, ...] = (
    "plaid", "stripes", "dots", "rings", "zigzag", "hatch", "waves", "grid",
)
# Not VOC: the scenes rendered again with every discriminative part painted over by its own body
# (same pixels everywhere else), for the classifier's part-hiding augmentation.
PART_HIDDEN_DIR = "JPEGImagesPartHidden"
SPLITS = ("train", "val")
_SPLIT_YEAR = {"train": 9000, "val": 9001}
_TMP_PREFIX = ".VOCdevkit.tmp-"


def make_id(split: str, index: int) -> str:
    """Image id of the ``index``-th (0-based) image of ``split``: ``9000_000001`` is train's first."""
    return f"{_SPLIT_YEAR[split]}_{index + 1:06d}"


@dataclass(frozen=True)
class SyntheticConfig:
    """Every knob of the generator. Lengths in pixels unless noted; colours in 0..255 RGB units.

    The defaults give the pipeline's embedded dataset (``seed``, ``n_train``, ``n_val``,
    ``body_textures`` and ``body_tint`` are the schema's ``synthetic.*`` defaults): 500 train + 100
    val images of 112..160 pixels a side with 1..3 objects of 5 classes.
    """

    # the keys of config.yaml's `synthetic:` section take their defaults from the schema
    seed: int = schema_default("synthetic.seed")
    n_train: int = schema_default("synthetic.n_train")
    n_val: int = schema_default("synthetic.n_val")
    # Real VOC class names; the k-th gets discriminative pattern PART_PATTERNS[k] (max 8 classes).
    classes: tuple[str, ...] = ("bird", "car", "cat", "dog", "person")
    # Image size: each side drawn uniformly from size_range (inclusive), unless image_size=(H, W).
    size_range: tuple[int, int] = (112, 160)
    image_size: tuple[int, int] | None = None
    # Objects per image: uniform on 1..max_objects; each further object repeats an earlier class
    # with probability p_same_class, else takes a class not in the image yet.
    max_objects: int = 3
    p_same_class: float = 0.2
    # Object diameter as a fraction of the shorter image side; irregularity = amplitude of the
    # radial Fourier harmonics 2..5 of the contour (0 = circle).
    object_scale: tuple[float, float] = (0.35, 0.6)
    shape_irregularity: float = 0.35
    min_visible: float = 0.55          # fraction of an object left visible by occluders/borders
    # Discriminative part (a superellipse, exponent 2..4, with the class's pattern): area as a
    # fraction of its object's, centre distance from the object centre as a fraction of the
    # object's radius in that direction, peak-to-peak pattern contrast, max pattern rotation.
    part_area: tuple[float, float] = (0.10, 0.20)
    part_offset: tuple[float, float] = (0.40, 0.70)
    part_contrast: float = 150.0
    part_max_rotation: float = 30.0    # degrees; patterns are told apart by shape, not angle
    # How much the part's colour axis follows its class's PART_COLOUR_AXES entry (1) rather than a
    # random direction (0). A small-receptive-field classifier learns colour-coded patterns from a
    # few hundred images; shape-only patterns (0) were not learnt by a CPU-sized model in minutes.
    part_colour_bias: float = 1.0
    # Mean shift of the part along its colour axis, in units of part_contrast (0 = the pattern
    # alternates around the body colour; 0.5 = the part is tinted with its class colour).
    part_tint: float = 1.0
    # Body texture, from a pool of BODY_TEXTURES (period band x straight/wavy grating) shared by
    # all classes; an object takes its class's preferred pool entry with probability
    # body_class_bias, else a uniformly random entry (0 = the body says nothing about the class).
    # Orientation and phase are random per object. body_contrast is peak-to-peak; body_bg_blend is
    # how much the body's mean colour follows the local background colour (1 = the same mean
    # colour, 0 = the object's own colour, drawn from the same law as the scene palette: mean
    # +- palette_spread). part_keep_body: fraction of the body grating
    # kept under the part pattern (the part is painted on the body, not cut out of it).
    body_class_bias: float = 0.8
    # "shared": the body grating comes from the shared pool above; "class": every body carries its
    # class's CLASS_BODY_TEXTURES entry (plaid / stripes / dots / rings / zigzag ...), so the body
    # alone tells the class and a classifier trained with its parts hidden must read the body.
    body_textures: str = schema_default("synthetic.body_textures")
    # Mean shift of the body colour along its class's colour axis (0..255 units): weak class
    # evidence spread over the whole body. Measured (README): the classifier learns the classes
    # faster with it, but transformer attribution still concentrates on the part.
    body_tint: float = schema_default("synthetic.body_tint")
    body_contrast: float = 50.0
    body_bg_blend: float = 0.35
    part_keep_body: float = 0.2
    # Background: per-scene palette of n_palette colours spread around a scene mean colour, mixed
    # by smooth random fields (blob scale in pixels) plus isotropic band-pass texture whose
    # strength matches the body grating's, distractor patches and pixel noise.
    n_palette: int = 5
    palette_spread: float = 30.0
    bg_blob_sigma: tuple[float, float] = (3.0, 8.0)
    bg_texture_contrast: float = 50.0
    n_distractors: tuple[int, int] = (0, 2)
    distractor_scale: tuple[float, float] = (0.08, 0.16)
    noise_sigma: float = 4.0
    illumination: float = 0.15         # max relative brightness change of a linear ramp
    # Output: void band half-width (pixels on each side of an instance border), JPEG quality,
    # whether to write the (non-VOC) SegmentationPart/ masks and JPEGImagesPartHidden/ images.
    void_radius: int = 1
    jpeg_quality: int = 90
    write_parts: bool = True

    def __post_init__(self) -> None:
        unknown = [c for c in self.classes if c not in CLASS_INDEX or c == "background"]
        if unknown:
            raise ValueError(f"unknown VOC class names {unknown}; valid: {VOC_CLASSES[1:]}")
        if not 1 <= len(self.classes) <= len(PART_PATTERNS):
            raise ValueError(f"need 1..{len(PART_PATTERNS)} classes, got {len(self.classes)}")
        if len(set(self.classes)) != len(self.classes):
            raise ValueError(f"duplicate class names in {self.classes}")
        if self.n_train < 0 or self.n_val < 0:
            raise ValueError("n_train and n_val must be >= 0")
        if self.max_objects < 1:
            raise ValueError("max_objects must be >= 1")
        lo, hi = self.size_range
        if not 32 <= lo <= hi:
            raise ValueError(f"size_range must satisfy 32 <= lo <= hi, got {self.size_range}")
        if self.image_size is not None and min(self.image_size) < 32:
            raise ValueError(f"image_size sides must be >= 32, got {self.image_size}")
        if self.body_textures not in ("shared", "class"):
            raise ValueError(f"body_textures must be 'shared' or 'class', got {self.body_textures!r}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError("jpeg_quality must be in 1..100")

    @property
    def class_ids(self) -> tuple[int, ...]:
        return tuple(CLASS_INDEX[c] for c in self.classes)

    def to_dict(self) -> dict:
        """JSON-ready dict (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, d: dict) -> "SyntheticConfig":
        """Inverse of :meth:`to_dict`; unknown keys raise ``TypeError``."""
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - fields
        if unknown:
            raise TypeError(f"unknown SyntheticConfig keys: {sorted(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})
