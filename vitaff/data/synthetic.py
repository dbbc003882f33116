"""Embedded synthetic dataset in the exact PASCAL VOC 2012 layout (the pipeline's default data).

No paper step: this module stands in for PASCAL VOC 2012 (Everingham et al., IJCV 2010,
http://host.robots.ox.ac.uk/pascal/VOC/voc2012/) when the real data cannot be downloaded. It is
built so that the problem the study solves is present (see ``docs/readme_parts/synthetic.md``):

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

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from vitaff.data.voc import CLASS_INDEX, IGNORE_INDEX, VOC_CLASSES, voc_colormap

__all__ = [
    "VOC_CLASSES",
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

    The defaults give the pipeline's embedded dataset: 300 train + 100 val images of 112..160
    pixels a side with 1..3 objects of 5 classes (about 10 s to generate on one CPU core).
    """

    seed: int = 0
    n_train: int = 300
    n_val: int = 100
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
    body_textures: str = "shared"
    # Mean shift of the body colour along its class's colour axis (0..255 units): weak class
    # evidence spread over the whole body. Measured (README): the classifier learns the classes
    # faster with it, but transformer attribution still concentrates on the part.
    body_tint: float = 0.0
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


# --------------------------------------------------------------------------- numeric helpers


def _filtered_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float,
                    sigma_hi: float | None = None) -> np.ndarray:
    """White noise low-pass filtered by a Gaussian (FFT, periodic), or band-passed by a difference
    of Gaussians (sigma < sigma_hi); normalised to zero mean and unit std."""
    h, w = shape
    spec = np.fft.rfft2(rng.standard_normal(shape))
    f2 = np.fft.fftfreq(h)[:, None] ** 2 + np.fft.rfftfreq(w)[None, :] ** 2
    gain = np.exp(-2.0 * np.pi**2 * sigma**2 * f2)
    if sigma_hi is not None:
        gain = gain - np.exp(-2.0 * np.pi**2 * sigma_hi**2 * f2)
    out = np.fft.irfft2(spec * gain, s=shape)
    out -= out.mean()
    return out / (out.std() + 1e-12)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / (np.linalg.norm(v) + 1e-12)


def _colour_direction(rng: np.random.Generator) -> np.ndarray:
    """A random unit RGB direction, biased towards luminance (like natural texture contrast)."""
    return _unit(_unit(np.ones(3)) * 1.2 + _unit(rng.standard_normal(3)))


def _soft(f: np.ndarray, width: np.ndarray | float) -> np.ndarray:
    """Anti-aliased step of a signed function: 0 below -width/2, 1 above +width/2."""
    return np.clip(0.5 + f / width, 0.0, 1.0)


def _radial_contour(rng: np.random.Generator, irregularity: float) -> tuple[np.ndarray, np.ndarray]:
    """Random smooth star-shaped contour r(theta) = 1 + sum_k a_k cos(k theta + phi_k), k = 2..5."""
    ks = np.arange(2, 6, dtype=np.float64)
    amps = rng.uniform(0.0, 1.0, size=4) * irregularity / ks**0.8
    phases = rng.uniform(0.0, 2 * np.pi, size=4)
    return amps, phases


def _contour_radius(theta: np.ndarray, amps: np.ndarray, phases: np.ndarray) -> np.ndarray:
    ks = np.arange(2, 2 + len(amps), dtype=np.float64)
    r = 1.0 + np.sum(amps[:, None] * np.cos(ks[:, None] * theta.reshape(1, -1) + phases[:, None]), axis=0)
    return np.maximum(r, 0.35).reshape(theta.shape)


def _pattern(name: str, u: np.ndarray, v: np.ndarray, px: float) -> np.ndarray:
    """Class pattern in part-local coordinates (part radius = 1, ``px`` = one pixel in those
    units): values in [0, 1], anti-aliased."""
    r = np.sqrt(u**2 + v**2)
    if name == "rings":          # concentric rings, 2 periods per radius
        f, g = np.cos(2 * np.pi * 2.0 * r), 4 * np.pi
    elif name == "checker":      # 4 x 4 checkerboard over the part
        f, g = np.sin(2 * np.pi * u) * np.sin(2 * np.pi * v), 2 * np.pi
    elif name == "cross":        # a thick plus sign
        f, g = 0.28 - np.minimum(np.abs(u), np.abs(v)), 1.0
    elif name == "dots":         # lattice of dots, 2.5 per diameter
        p = 0.8
        du = (u / p + 0.25) % 1.0 - 0.5
        dv = (v / p + 0.25) % 1.0 - 0.5
        f, g = 0.27 - np.sqrt(du**2 + dv**2), 1.0 / p
    elif name == "spokes":       # pinwheel of 5 spokes (no spokes in the very centre)
        phi = np.arctan2(v, u)
        f = np.where(r < 0.2, -1.0, np.sin(5 * phi))
        g = 5.0 / np.maximum(r, 0.2)
    elif name == "chevron":      # stacked chevrons (V shapes)
        f, g = np.sin(2 * np.pi * 1.5 * (np.abs(u) + v)), 3 * np.pi * 1.4
    elif name == "triangle":     # a solid triangle
        a = np.array([np.pi / 2, np.pi / 2 + 2 * np.pi / 3, np.pi / 2 + 4 * np.pi / 3])
        d = np.stack([u * np.cos(t) + v * np.sin(t) for t in a])  # distance along 3 normals
        f, g = 0.38 - d.max(axis=0), 1.0
    elif name == "frame":        # hollow square frame with a centre square
        m = np.maximum(np.abs(u), np.abs(v))
        f, g = np.maximum(0.12 - np.abs(m - 0.62), 0.18 - m), 1.0
    else:
        raise ValueError(f"unknown pattern {name!r}")
    return _soft(f, np.asarray(g) * px * 1.2)


def _void_band(inst: np.ndarray, radius: int) -> np.ndarray:
    """Pixels with a different instance id within Chebyshev distance ``radius`` (VOC's void
    band along object outlines, ``2 * radius`` pixels wide)."""
    h, w = inst.shape
    pad = np.pad(inst, radius, mode="edge")
    band = np.zeros((h, w), dtype=bool)
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            if dy or dx:
                band |= pad[radius + dy:radius + dy + h, radius + dx:radius + dx + w] != inst
    return band


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    """VOC bounding box of a boolean mask: (xmin, ymin, xmax, ymax), 1-based, inclusive."""
    ys = np.flatnonzero(mask.any(axis=1))
    xs = np.flatnonzero(mask.any(axis=0))
    return int(xs[0]) + 1, int(ys[0]) + 1, int(xs[-1]) + 1, int(ys[-1]) + 1


# --------------------------------------------------------------------------- scene rendering


def _draw_size(rng: np.random.Generator, cfg: SyntheticConfig) -> tuple[int, int]:
    if cfg.image_size is not None:
        return int(cfg.image_size[0]), int(cfg.image_size[1])
    lo, hi = cfg.size_range
    h, w = rng.integers(lo, hi + 1, size=2)
    return int(h), int(w)


def _draw_classes(rng: np.random.Generator, cfg: SyntheticConfig, n: int) -> list[int]:
    ids = list(cfg.class_ids)
    out: list[int] = []
    for _ in range(n):
        unused = [c for c in ids if c not in out]
        if out and (not unused or rng.random() < cfg.p_same_class):
            out.append(int(rng.choice(out)))
        else:
            out.append(int(rng.choice(unused)))
    return out


def _background(rng: np.random.Generator, cfg: SyntheticConfig, h: int, w: int,
                palette: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Smooth palette-mixture colour field (h x w x 3) and the full background image with
    isotropic band-pass texture added."""
    k = len(palette)
    sig = rng.uniform(*cfg.bg_blob_sigma)
    fields = np.stack([_filtered_noise(rng, (h, w), sig) for _ in range(k)])
    weights = np.exp(2.5 * fields)
    weights /= weights.sum(axis=0, keepdims=True)
    smooth = np.einsum("khw,kc->hwc", weights, palette)
    # Isotropic band-pass texture with the same std as the body grating (sinusoid std = A/2/sqrt2).
    tex_std = cfg.bg_texture_contrast / (2 * np.sqrt(2))
    img = smooth.copy()
    for _ in range(2):  # two colour directions, two scales of clutter
        s1 = rng.uniform(0.7, 1.3)
        tex = _filtered_noise(rng, (h, w), s1, s1 * 2.5)
        img += (tex_std / np.sqrt(2)) * tex[..., None] * _colour_direction(rng)
    return smooth, img


def _grating(rng: np.random.Generator, texture: int, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """Body texture ``BODY_TEXTURES[texture]``: a straight or wavy grating with one random
    orientation, period and phase; values in [-0.5, 0.5]."""
    (p_lo, p_hi), wavy = BODY_TEXTURES[texture]
    theta = rng.uniform(0.0, np.pi)
    period = rng.uniform(p_lo, p_hi)
    phase = rng.uniform(0.0, 2 * np.pi)
    t = xx * np.cos(theta) + yy * np.sin(theta)
    if wavy:
        n = -xx * np.sin(theta) + yy * np.cos(theta)
        t = t + rng.uniform(0.8, 1.6) * period / 4 * np.sin(2 * np.pi * n / rng.uniform(14, 24))
    s = np.sin(2 * np.pi * t / period + phase)
    sharp = rng.uniform(0.5, 2.0)  # from sinusoid to near square wave
    return 0.5 * np.tanh(sharp * s) / np.tanh(sharp)


def _class_texture(rng: np.random.Generator, name: str, yy: np.ndarray, xx: np.ndarray,
                   centre: tuple[float, float]) -> np.ndarray:
    """Class-specific body texture ``name`` (:data:`CLASS_BODY_TEXTURES`) with one random
    orientation, period and phase; zero mean and the std of a [-0.5, 0.5] sinusoid (0.354) over
    the frame, i.e. the same energy as the shared gratings."""
    theta = rng.uniform(0.0, np.pi)
    period = rng.uniform(4.5, 6.5)
    phase = rng.uniform(0.0, 2 * np.pi)
    t = xx * np.cos(theta) + yy * np.sin(theta)
    n = -xx * np.sin(theta) + yy * np.cos(theta)
    k = 2 * np.pi / period
    if name == "plaid":        # two crossed gratings
        f = np.sin(k * t + phase) + np.sin(k * n + phase)
    elif name == "stripes":    # thin bright bars (duty cycle 1/4), wider period
        f = ((t / (1.5 * period) + phase / (2 * np.pi)) % 1.0 < 0.25).astype(np.float64)
    elif name == "dots":       # lattice of round dots
        du = (t / period + phase / (2 * np.pi)) % 1.0 - 0.5
        dv = (n / period) % 1.0 - 0.5
        f = np.clip(0.3 - np.sqrt(du**2 + dv**2), 0.0, None)
    elif name == "rings":      # concentric rings around the object centre
        r = np.hypot(yy - centre[0], xx - centre[1])
        f = np.sin(k * r + phase)
    elif name == "zigzag":     # stripes displaced by a triangle wave
        tri = np.abs((n / (2 * period)) % 1.0 - 0.5) * 2 * period
        f = np.sign(np.sin(k * (t + tri) + phase))
    elif name == "hatch":      # diagonal cross-hatch of thin lines
        f = np.maximum(np.cos(k * (t + n) / np.sqrt(2)), np.cos(k * (t - n) / np.sqrt(2))) ** 8
    elif name == "waves":      # strongly curved gratings
        f = np.sin(k * (t + 0.6 * period * np.sin(2 * np.pi * n / (2.5 * period))) + phase)
    elif name == "grid":       # square grid of thin lines
        f = np.maximum(np.cos(k * t + phase), np.cos(k * n)) ** 6
    else:
        raise ValueError(f"unknown body texture {name!r}")
    f = f - f.mean()
    return f * (0.5 / np.sqrt(2)) / (f.std() + 1e-12)


def _shape_alpha(cy: float, cx: float, radius: float, amps: np.ndarray, phases: np.ndarray,
                 rot: float, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """Anti-aliased coverage (0..1) of a radial-Fourier shape centred at (cy, cx)."""
    dy, dx = yy - cy, xx - cx
    rho = np.sqrt(dy**2 + dx**2)
    theta = np.arctan2(dy, dx) - rot
    return np.clip(radius * _contour_radius(theta, amps, phases) - rho + 0.5, 0.0, 1.0)


def _distractors(rng: np.random.Generator, cfg: SyntheticConfig, img: np.ndarray, smooth: np.ndarray,
                 yy: np.ndarray, xx: np.ndarray) -> None:
    """Paint non-discriminative clutter patches into the background (in place): small blobs with
    a body-like grating, solid contrast blobs and bars. None carries a class pattern."""
    h, w = img.shape[:2]
    side = min(h, w)
    n = int(rng.integers(cfg.n_distractors[0], cfg.n_distractors[1] + 1))
    for _ in range(n):
        kind = rng.choice(["grating", "blob", "bar"])
        radius = 0.5 * side * rng.uniform(*cfg.distractor_scale)
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        amps, phases = _radial_contour(rng, cfg.shape_irregularity)
        if kind == "bar":
            amps = np.zeros(4)
            rot = rng.uniform(0, np.pi)
            dy, dx = yy - cy, xx - cx
            a = dx * np.cos(rot) + dy * np.sin(rot)
            b = -dx * np.sin(rot) + dy * np.cos(rot)
            alpha = np.clip(radius * 1.3 - np.abs(a) + 0.5, 0, 1) * np.clip(radius * 0.2 - np.abs(b) + 0.5, 0, 1)
        else:
            alpha = _shape_alpha(cy, cx, radius, amps, phases, rng.uniform(0, 2 * np.pi), yy, xx)
        if kind == "grating":
            tex = int(rng.integers(len(BODY_TEXTURES)))
            patch = smooth + cfg.body_contrast * _grating(rng, tex, yy, xx)[..., None] * _colour_direction(rng)
        else:
            patch = smooth + rng.choice([-1.0, 1.0]) * rng.uniform(0.25, 0.45) * cfg.part_contrast * _colour_direction(rng)
        img += alpha[..., None] * (patch - img)


def render_scene(rng: np.random.Generator, cfg: SyntheticConfig | None = None,
                 class_ids: list[int] | tuple[int, ...] | None = None, n_objects: int | None = None,
                 *, size: tuple[int, int] | None = None, return_aux: bool = False):
    """Render one scene.

    Args:
        rng: the scene's random generator (all randomness comes from it).
        cfg: generator config (defaults to ``SyntheticConfig()``).
        class_ids: VOC class indices, one per object, each in ``cfg.classes``; if ``None`` they
            are drawn (1..``max_objects`` objects).
        n_objects: number of objects; with ``class_ids`` it must equal ``len(class_ids)``.
            ``render_scene(rng, cfg, class_ids=[8])`` gives one cat (ImageNet-segmentation style).
        size: ``(H, W)`` overriding the config's size.
        return_aux: also return a dict of diagnostics (see below).

    Returns:
        ``img`` H x W x 3 uint8 RGB, ``mask`` H x W uint8 (0..20, 255 = void band), ``objects``
        list of ``(class_id, (xmin, ymin, xmax, ymax))`` per visible instance in painting order
        with the VOC 1-based inclusive box of its visible pixels; with ``return_aux`` a 4th item
        ``{"instances": H x W uint8 (0 bg, k = objects[k-1], 255 void), "parts": H x W uint8
        (k on the visible discriminative part of instance k), "truncated": [bool per object],
        "part_hidden": H x W x 3 uint8, the same scene with every part painted over by its body}``.
        An object that cannot be placed visibly enough after retries is dropped (never the first).
    """
    cfg = cfg or SyntheticConfig()
    if class_ids is not None:
        class_ids = [int(c) for c in class_ids]
        bad = [c for c in class_ids if c not in cfg.class_ids]
        if bad:
            raise ValueError(f"class ids {bad} not among the config's classes {cfg.class_ids}")
        if n_objects is not None and n_objects != len(class_ids):
            raise ValueError(f"n_objects={n_objects} but {len(class_ids)} class_ids given")
    h, w = (int(size[0]), int(size[1])) if size is not None else _draw_size(rng, cfg)
    if n_objects is None:
        n_objects = len(class_ids) if class_ids is not None else int(rng.integers(1, cfg.max_objects + 1))
    if n_objects < 1:
        raise ValueError("n_objects must be >= 1")
    if class_ids is None:
        class_ids = _draw_classes(rng, cfg, n_objects)
    pattern_of = {cid: PART_PATTERNS[k] for k, cid in enumerate(cfg.class_ids)}
    class_texture_of = {cid: CLASS_BODY_TEXTURES[k] for k, cid in enumerate(cfg.class_ids)}
    texture_of = {cid: k % len(BODY_TEXTURES) for k, cid in enumerate(cfg.class_ids)}

    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    # Scene palette: colours scattered around a scene mean; background and bodies both use it.
    mean = rng.uniform(70, 185, size=3)
    palette = np.clip(mean + rng.normal(0, cfg.palette_spread, size=(cfg.n_palette, 3)), 20, 235)
    smooth, img = _background(rng, cfg, h, w, palette)
    _distractors(rng, cfg, img, smooth, yy, xx)
    hidden = img.copy()  # the same scene with every part painted over by its body

    inst = np.zeros((h, w), dtype=np.int32)      # painted instance id (painting order)
    parts = np.zeros((h, w), dtype=np.int32)     # instance id on its part pixels
    full_area: list[float] = []
    part_area: list[int] = []
    side = min(h, w)
    placed: list[int] = []
    for k, cid in enumerate(class_ids):
        ok = False
        for attempt in range(30):
            shrink = 0.9 ** (attempt // 6)
            radius = 0.5 * side * rng.uniform(*cfg.object_scale) * shrink
            amps, phases = _radial_contour(rng, cfg.shape_irregularity)
            rot = rng.uniform(0, 2 * np.pi)
            cy = rng.uniform(0.15 * h, 0.85 * h)
            cx = rng.uniform(0.15 * w, 0.85 * w)
            if not placed and attempt >= 20:  # the first object must fit: centre it
                cy, cx = 0.5 * h, 0.5 * w
            alpha = _shape_alpha(cy, cx, radius, amps, phases, rot, yy, xx)
            omask = alpha >= 0.5
            th = np.linspace(0, 2 * np.pi, 720, endpoint=False)
            area = 0.5 * np.mean(_contour_radius(th, amps, phases) ** 2) * 2 * np.pi * radius**2
            if omask.sum() < cfg.min_visible * area:
                continue  # too much outside the image
            # Discriminative part: small superellipse, off-centre, clipped to the object.
            tp = rng.uniform(0, 2 * np.pi)
            r_dir = radius * float(_contour_radius(np.array([tp - rot]), amps, phases)[0])
            rp = np.sqrt(rng.uniform(*cfg.part_area) * area / np.pi)
            dist = rng.uniform(*cfg.part_offset) * r_dir
            dist = max(min(dist, 0.95 * r_dir - rp), 0.3 * r_dir)
            py, px_ = cy + dist * np.sin(tp), cx + dist * np.cos(tp)
            prot = np.deg2rad(rng.uniform(-cfg.part_max_rotation, cfg.part_max_rotation))
            dy, dx = (yy - py) / rp, (xx - px_) / rp
            u = dx * np.cos(prot) + dy * np.sin(prot)
            v = -dx * np.sin(prot) + dy * np.cos(prot)
            expo = rng.uniform(2.0, 4.0)
            pshape = (np.abs(u) ** expo + np.abs(v) ** expo) ** (1 / expo)
            palpha = np.clip((1.0 - pshape) * rp + 0.5, 0, 1) * alpha
            pmask = (palpha >= 0.5) & omask
            # The part must be (almost) fully inside the image and of reasonable size.
            if pmask.sum() < 0.6 * np.pi * rp**2 * 0.8:
                continue
            # Occlusion check: earlier objects keep enough of their body and of their part.
            new_inst = np.where(omask, k + 1, inst)
            fine = True
            for j in placed:
                if (new_inst == j + 1).sum() < cfg.min_visible * full_area[j] or \
                        ((parts == j + 1) & ~omask).sum() < 0.8 * part_area[j]:
                    fine = False
                    break
            if not fine:
                continue
            ok = True
            break
        if not ok:
            continue  # drop this object (never the first: it is centred on its last tries)
        # Body: the object's own palette colour pulled towards the local background colour,
        # with a grating from the shared texture pool.
        own = np.clip(mean + rng.normal(0, cfg.palette_spread, size=3), 20, 235)  # same law as palette
        body_mean = cfg.body_bg_blend * smooth + (1 - cfg.body_bg_blend) * own
        if cfg.body_textures == "class":
            grating = _class_texture(rng, class_texture_of[cid], yy, xx, (cy, cx))
        else:
            if rng.random() < cfg.body_class_bias:
                tex = texture_of[cid]
            else:
                tex = int(rng.integers(len(BODY_TEXTURES)))
            grating = _grating(rng, tex, yy, xx)
        class_axis = _unit(PART_COLOUR_AXES[cfg.class_ids.index(cid) % len(PART_COLOUR_AXES)])
        body_mean = body_mean + cfg.body_tint * class_axis
        body = body_mean + cfg.body_contrast * grating[..., None] * _colour_direction(rng)
        hidden += alpha[..., None] * (body - hidden)
        pat = _pattern(pattern_of[cid], u, v, 1.0 / rp) - 0.5 + cfg.part_tint
        pdir = _unit(cfg.part_colour_bias * class_axis + (1 - cfg.part_colour_bias) * _colour_direction(rng))
        body += palpha[..., None] * (cfg.part_contrast * pat[..., None] * pdir
                                     - (1.0 - cfg.part_keep_body) * (body - body_mean))
        img += alpha[..., None] * (body - img)
        inst = new_inst
        parts[omask] = 0
        parts[pmask] = k + 1
        full_area.append(area)
        part_area.append(int(pmask.sum()))
        placed.append(k)

    # Illumination ramp and pixel noise over everything.
    ang = rng.uniform(0, 2 * np.pi)
    ramp = ((xx - w / 2) * np.cos(ang) + (yy - h / 2) * np.sin(ang)) / (0.5 * np.hypot(h, w))
    gain = (1.0 + cfg.illumination * rng.uniform(-1, 1) * ramp)[..., None]
    noise = rng.normal(0.0, cfg.noise_sigma, size=img.shape)
    img = img * gain + noise
    hidden = hidden * gain + noise
    img_u8 = np.clip(np.rint(img), 0, 255).astype(np.uint8)

    # Relabel the visible instances 1..n in painting order; class mask; void band.
    objects: list[tuple[int, tuple[int, int, int, int]]] = []
    truncated: list[bool] = []
    inst_out = np.zeros((h, w), dtype=np.uint8)
    parts_out = np.zeros((h, w), dtype=np.uint8)
    mask = np.zeros((h, w), dtype=np.uint8)
    for k in placed:
        m = inst == k + 1
        if not m.any():
            continue
        new = len(objects) + 1
        inst_out[m] = new
        parts_out[parts == k + 1] = new
        mask[m] = class_ids[k]
        objects.append((class_ids[k], _bbox(m)))
        truncated.append(bool(m[0].any() or m[-1].any() or m[:, 0].any() or m[:, -1].any()))
    band = _void_band(inst_out, cfg.void_radius) if cfg.void_radius > 0 else np.zeros((h, w), bool)
    mask[band] = IGNORE_INDEX
    if not return_aux:
        return img_u8, mask, objects
    inst_out[band] = IGNORE_INDEX
    return img_u8, mask, objects, {"instances": inst_out, "parts": parts_out, "truncated": truncated,
                                   "part_hidden": np.clip(np.rint(hidden), 0, 255).astype(np.uint8)}


# --------------------------------------------------------------------------- file writing


def _encode_jpeg(img: np.ndarray, quality: int) -> bytes:
    buf = io.BytesIO()
    # No EXIF / comments / timestamps; fixed quality and 4:2:0 subsampling -> deterministic bytes.
    Image.fromarray(img, "RGB").save(buf, format="JPEG", quality=quality, subsampling=2, optimize=False)
    return buf.getvalue()


_PALETTE_BYTES = voc_colormap(256).tobytes()


def _encode_palette_png(mask: np.ndarray) -> bytes:
    im = Image.frombytes("P", (mask.shape[1], mask.shape[0]), np.ascontiguousarray(mask).tobytes())
    im.putpalette(_PALETTE_BYTES)
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=False)  # Pillow writes no tIME chunk
    return buf.getvalue()


def _annotation_xml(image_id: str, h: int, w: int, objects, truncated) -> str:
    lines = [
        "<annotation>",
        "\t<folder>VOC2012</folder>",
        f"\t<filename>{image_id}.jpg</filename>",
        "\t<source>",
        "\t\t<database>vitaff synthetic VOC</database>",
        "\t\t<annotation>vitaff.data.synthetic</annotation>",
        "\t\t<image>synthetic</image>",
        "\t</source>",
        "\t<size>",
        f"\t\t<width>{w}</width>",
        f"\t\t<height>{h}</height>",
        "\t\t<depth>3</depth>",
        "\t</size>",
        "\t<segmented>1</segmented>",
    ]
    for (cid, (x0, y0, x1, y1)), trunc in zip(objects, truncated):
        lines += [
            "\t<object>",
            f"\t\t<name>{VOC_CLASSES[cid]}</name>",
            "\t\t<pose>Unspecified</pose>",
            f"\t\t<truncated>{int(trunc)}</truncated>",
            "\t\t<difficult>0</difficult>",
            "\t\t<bndbox>",
            f"\t\t\t<xmin>{x0}</xmin>",
            f"\t\t\t<ymin>{y0}</ymin>",
            f"\t\t\t<xmax>{x1}</xmax>",
            f"\t\t\t<ymax>{y1}</ymax>",
            "\t\t</bndbox>",
            "\t</object>",
        ]
    lines.append("</annotation>")
    return "\n".join(lines) + "\n"


def _json_dumps(obj) -> str:
    return json.dumps(obj, indent=1, sort_keys=True) + "\n"


def is_complete(root: str | os.PathLike) -> bool:
    """Whether ``<root>/VOCdevkit/VOC2012/synthetic.json`` exists (written last, inside the
    temporary directory, before the atomic rename). Temporary ``.VOCdevkit.tmp-*`` directories
    left by interrupted runs never count."""
    return (Path(root) / "VOCdevkit" / "VOC2012" / "synthetic.json").is_file()


def _existing(root: Path, cfg: SyntheticConfig) -> dict:
    """Summary of an existing complete dataset generated with ``cfg``; raise if it differs."""
    meta_path = root / "VOCdevkit" / "VOC2012" / "synthetic.json"
    if not meta_path.is_file():
        raise FileExistsError(
            f"{root / 'VOCdevkit'} exists but is not a complete synthetic dataset (no {meta_path.name}); "
            "it may be real VOC data or a foreign directory. Choose another root or delete it.")
    meta = json.loads(meta_path.read_text())
    if meta.get("version") != GENERATOR_VERSION or meta.get("config") != cfg.to_dict():
        raise FileExistsError(
            f"{meta_path} was generated with a different config or generator version "
            f"(version {meta.get('version')}, ours {GENERATOR_VERSION}); delete {root / 'VOCdevkit'} "
            "to regenerate, or generate into another root.")
    return {"root": str(root / "VOCdevkit" / "VOC2012"), **meta["summary"]}


def generate_voc(root: str | os.PathLike, cfg: SyntheticConfig | None = None, *, verbose: bool = False) -> dict:
    """Generate the dataset under ``root/VOCdevkit/VOC2012`` and return its summary.

    The summary is ``{"root": <VOC2012 dir>, "ids": {"train": [...], "val": [...],
    "trainval": [...]}, "class_counts": {split: {class name: images containing it}},
    "instance_counts": {split: {class name: instances}}, "objects_per_image": {split: {n: images}}}``.

    Atomic and idempotent: files go to a temporary directory ``root/.VOCdevkit.tmp-*`` that is
    renamed to ``root/VOCdevkit`` last. If ``root/VOCdevkit`` already holds a dataset generated
    with the same config and generator version, nothing is written and its summary is returned;
    any other existing ``root/VOCdevkit`` raises ``FileExistsError`` (never overwritten).
    """
    cfg = cfg or SyntheticConfig()
    root = Path(root)
    final = root / "VOCdevkit"
    if final.exists():
        return _existing(root, cfg)
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=_TMP_PREFIX, dir=root))
    try:
        voc = tmp / "VOC2012"
        dirs = {d: voc / d for d in ("JPEGImages", "SegmentationClass", "SegmentationObject",
                                     "Annotations", "ImageSets/Segmentation", "ImageSets/Main")}
        if cfg.write_parts:
            dirs["SegmentationPart"] = voc / "SegmentationPart"
            dirs[PART_HIDDEN_DIR] = voc / PART_HIDDEN_DIR
        for d in dirs.values():
            d.mkdir(parents=True)
        ids: dict[str, list[str]] = {}
        class_counts: dict[str, dict[str, int]] = {}
        instance_counts: dict[str, dict[str, int]] = {}
        per_image: dict[str, dict[str, int]] = {}
        t0 = time.perf_counter()
        for s, split in enumerate(SPLITS):
            n = cfg.n_train if split == "train" else cfg.n_val
            ids[split] = []
            cc = {c: 0 for c in cfg.classes}
            ic = {c: 0 for c in cfg.classes}
            pi: dict[str, int] = {}
            for i in range(n):
                image_id = make_id(split, i)
                rng = np.random.default_rng([cfg.seed, s, i])
                img, mask, objects, aux = render_scene(rng, cfg, return_aux=True)
                h, w = mask.shape
                (dirs["JPEGImages"] / f"{image_id}.jpg").write_bytes(_encode_jpeg(img, cfg.jpeg_quality))
                (dirs["SegmentationClass"] / f"{image_id}.png").write_bytes(_encode_palette_png(mask))
                (dirs["SegmentationObject"] / f"{image_id}.png").write_bytes(_encode_palette_png(aux["instances"]))
                if cfg.write_parts:
                    (dirs["SegmentationPart"] / f"{image_id}.png").write_bytes(_encode_palette_png(aux["parts"]))
                    (dirs[PART_HIDDEN_DIR] / f"{image_id}.jpg").write_bytes(
                        _encode_jpeg(aux["part_hidden"], cfg.jpeg_quality))
                (dirs["Annotations"] / f"{image_id}.xml").write_text(
                    _annotation_xml(image_id, h, w, objects, aux["truncated"]))
                ids[split].append(image_id)
                names = [VOC_CLASSES[c] for c, _ in objects]
                for name in set(names):
                    cc[name] += 1
                for name in names:
                    ic[name] += 1
                pi[str(len(objects))] = pi.get(str(len(objects)), 0) + 1
            class_counts[split], instance_counts[split] = cc, ic
            per_image[split] = dict(sorted(pi.items()))
            if verbose:
                print(f"{split}: {n} images ({time.perf_counter() - t0:.1f} s)", file=sys.stderr)
        ids["trainval"] = sorted(ids["train"] + ids["val"])
        for split, lst in ids.items():
            text = "".join(f"{i}\n" for i in lst)
            (dirs["ImageSets/Segmentation"] / f"{split}.txt").write_text(text)
            (dirs["ImageSets/Main"] / f"{split}.txt").write_text(text)
        summary = {
            "ids": ids,
            "class_counts": class_counts,
            "instance_counts": instance_counts,
            "objects_per_image": per_image,
        }
        meta = {
            "generator": "vitaff.data.synthetic",
            "version": GENERATOR_VERSION,
            "config": cfg.to_dict(),
            "part_patterns": {c: PART_PATTERNS[k] for k, c in enumerate(cfg.classes)},
            "summary": summary,
        }
        (voc / "synthetic.json").write_text(_json_dumps(meta))  # completion mark, written last
        try:
            os.rename(tmp, final)
        except OSError:
            if final.exists():  # a concurrent run finished first: accept it if it is ours
                shutil.rmtree(tmp, ignore_errors=True)
                return _existing(root, cfg)
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"root": str(final / "VOC2012"), **summary}


# --------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    d = SyntheticConfig()
    p = argparse.ArgumentParser(
        prog="python -m vitaff.data.synthetic",
        description="Generate the embedded synthetic dataset in PASCAL VOC 2012 layout under "
                    "ROOT/VOCdevkit/VOC2012 (atomic; a no-op if it exists with the same config).")
    p.add_argument("--root", required=True, type=Path, help="directory that will contain VOCdevkit/")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--n-train", type=int, default=d.n_train)
    p.add_argument("--n-val", type=int, default=d.n_val)
    p.add_argument("--classes", default=",".join(d.classes),
                   help=f"comma-separated VOC class names (1..{len(PART_PATTERNS)})")
    p.add_argument("--max-objects", type=int, default=d.max_objects)
    p.add_argument("--size-range", type=int, nargs=2, default=d.size_range, metavar=("LO", "HI"))
    p.add_argument("--image-size", type=int, nargs=2, default=None, metavar=("H", "W"),
                   help="fixed size instead of --size-range")
    p.add_argument("--jpeg-quality", type=int, default=d.jpeg_quality)
    p.add_argument("--config-json", type=Path, default=None,
                   help="JSON file of further SyntheticConfig fields (command-line flags win)")
    a = p.parse_args(argv)
    extra = json.loads(a.config_json.read_text()) if a.config_json else {}
    fields = dict(extra)
    fields.update(seed=a.seed, n_train=a.n_train, n_val=a.n_val,
                  classes=[c.strip() for c in a.classes.split(",") if c.strip()],
                  max_objects=a.max_objects, size_range=list(a.size_range),
                  image_size=list(a.image_size) if a.image_size else None, jpeg_quality=a.jpeg_quality)
    try:
        cfg = SyntheticConfig.from_dict(fields)
    except (TypeError, ValueError) as err:
        p.error(str(err))
    t0 = time.perf_counter()
    try:
        summary = generate_voc(a.root, cfg, verbose=True)
    except FileExistsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    counts = {s: len(summary["ids"][s]) for s in SPLITS}
    print(f"{summary['root']}: {counts} images, class counts {summary['class_counts']} "
          f"({time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
