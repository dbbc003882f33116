"""Scene layout of the embedded dataset: image size, classes, background, objects with their
parts, occlusion and distractors (:func:`render_scene`)."""

from __future__ import annotations

import numpy as np

from vitaff.data.voc import IGNORE_INDEX
from vitaff.data.synthetic.config import (
    BODY_TEXTURES,
    CLASS_BODY_TEXTURES,
    PART_COLOUR_AXES,
    PART_PATTERNS,
    SyntheticConfig,
)
from vitaff.data.synthetic.textures import (
    _bbox,
    _class_texture,
    _colour_direction,
    _contour_radius,
    _filtered_noise,
    _grating,
    _pattern,
    _radial_contour,
    _unit,
    _void_band,
)


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
