"""Textures and patterns of the embedded scenes: smooth noise, radial contours, the classes'
discriminative part patterns, the shared body gratings and the class-specific body textures."""

from __future__ import annotations

import numpy as np

from vitaff.data.synthetic.config import BODY_TEXTURES


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
