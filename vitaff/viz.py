"""Figures for people: heat-map overlays, VOC-coloured label maps, and labelled image rows."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from vitaff.data.voc import voc_colormap

_CMAP = voc_colormap()


def heatmap(values: np.ndarray) -> np.ndarray:
    """H x W in [0, 1] -> H x W x 3 uint8 with a blue-green-yellow-red ramp (jet-like)."""
    v = np.clip(np.nan_to_num(values.astype(np.float32)), 0, 1)
    r = np.clip(1.5 - np.abs(4 * v - 3), 0, 1)
    g = np.clip(1.5 - np.abs(4 * v - 2), 0, 1)
    b = np.clip(1.5 - np.abs(4 * v - 1), 0, 1)
    return (np.stack([r, g, b], -1) * 255).astype(np.uint8)


def overlay(image: np.ndarray, values: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend a [0, 1] map over an RGB image."""
    return (image.astype(np.float32) * (1 - alpha) + heatmap(values).astype(np.float32) * alpha).astype(np.uint8)


def colorize(labels: np.ndarray) -> np.ndarray:
    """VOC index map (0..20, 255) -> RGB with the VOC palette."""
    return _CMAP[labels.astype(np.uint8)]


def blend_labels(image: np.ndarray, labels: np.ndarray, alpha: float = 0.6) -> np.ndarray:
    return (image.astype(np.float32) * (1 - alpha) + colorize(labels).astype(np.float32) * alpha).astype(np.uint8)


def panel_row(panels: list[np.ndarray], titles: list[str], height: int | None = None) -> Image.Image:
    """Side-by-side RGB panels of equal height with a title strip above each."""
    height = height or max(p.shape[0] for p in panels)
    tiles = []
    for panel, title in zip(panels, titles):
        im = Image.fromarray(panel)
        im = im.resize((max(1, round(im.width * height / im.height)), height), Image.NEAREST)
        tile = Image.new("RGB", (im.width, height + 14), "white")
        tile.paste(im, (0, 14))
        ImageDraw.Draw(tile).text((2, 1), title, fill="black")
        tiles.append(tile)
    row = Image.new("RGB", (sum(t.width for t in tiles) + 2 * (len(tiles) - 1), height + 14), "white")
    x = 0
    for t in tiles:
        row.paste(t, (x, 0))
        x += t.width + 2
    return row


def stack_rows(rows: list[Image.Image]) -> Image.Image:
    width = max(r.width for r in rows)
    out = Image.new("RGB", (width, sum(r.height for r in rows) + 2 * (len(rows) - 1)), "white")
    y = 0
    for r in rows:
        out.paste(r, (0, y))
        y += r.height + 2
    return out
