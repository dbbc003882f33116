"""Background maps and dense-CRF refinement of class seeds (SPEC section 6, "Background maps" and
"Dense CRF").

Step of the study: the class-wise seeds M_c (one map in [0, 1] per class present in the image) are
completed by a background map

    M_bg = (1 - max_c M_c) ** alpha                                            (study, eq. for M_bg)

evaluated at alpha_low = 4 and alpha_high = 32, and each stack [M_bg, M_c ...] is refined by the
fully connected CRF of Krähenbühl & Koltun (NIPS 2011, "Efficient Inference in Fully Connected CRFs
with Gaussian Edge Potentials") as in AffinityNet (Ahn & Kwak, CVPR 2018, section 3.2).
The low-alpha CRF argmax gives the confident foreground, the high-alpha argmax the confident
background.

Conventions
-----------
* Probabilities are passed to the CRF as given (not renormalised; psa does the same): the unary is
  ``-log(clip(p, 1e-5, 1))`` (pydensecrf's ``unary_from_softmax``).
* ``class_maps`` holds one map per *present* class, in the order of ``present_classes`` (label
  indices 1..C of the dataset's class list). A full stack (class c at channel c - 1) is also
  accepted when its length differs from ``len(present_classes)``; see :func:`select_present_maps`.
* Returned label maps are in VOC index space: 0 = background, c = VOC class c. 255 is never produced
  here (it belongs to the affinity labels, :mod:`vitaff.affinity`).
* Probability stacks are ``K x H x W`` float32 with channel 0 = background and channel k = the k-th
  present class.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = [
    "CRF_DEFAULTS",
    "background_map",
    "select_present_maps",
    "dense_crf",
    "crf_probabilities",
    "crf_confident_labels",
    "crf_argmax_labels",
    "channels_to_voc",
]

#: The study's / psa's CRF constants (SPEC section 6); every one is overridable by keyword.
CRF_DEFAULTS = dict(
    n_iter=10,
    gaussian_sxy=3.0,
    gaussian_compat=3.0,
    bilateral_sxy=80.0,
    bilateral_srgb=13.0,
    bilateral_compat=10.0,
)

_UNARY_CLIP = 1e-5


def _to_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor, without importing torch here
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def background_map(class_maps, alpha: float) -> np.ndarray:
    """``(1 - max_c M_c) ** alpha`` over a ``C x H x W`` stack in [0, 1]; ones when C == 0."""
    maps = _to_numpy(class_maps).astype(np.float32, copy=False)
    if maps.ndim != 3:
        raise ValueError(f"class_maps must be C x H x W, got shape {maps.shape}")
    if maps.shape[0] == 0:
        return np.ones(maps.shape[1:], dtype=np.float32)
    return np.power(1.0 - maps.max(axis=0), alpha).astype(np.float32)


MAX_LABEL = 254  # label PNGs are uint8 with 255 void (vitaff.data.classes)


def _check_present(present_classes: Sequence[int]) -> list[int]:
    present = [int(c) for c in present_classes]
    if len(set(present)) != len(present) or any(c < 1 or c > MAX_LABEL for c in present):
        raise ValueError(f"present_classes must be distinct label indices in 1..{MAX_LABEL}, got {present}")
    return present


def select_present_maps(class_maps, present_classes: Sequence[int]) -> np.ndarray:
    """Return the ``len(present) x H x W`` stack of maps of the present classes, in their order.

    ``class_maps`` is either already that stack (``C == len(present_classes)``, the stores' layout)
    or a full stack indexed by class - 1 (``C`` >= the largest present index, e.g. VOC's 20).
    """
    maps = _to_numpy(class_maps).astype(np.float32, copy=False)
    present = _check_present(present_classes)
    if maps.ndim != 3:
        raise ValueError(f"class_maps must be C x H x W, got shape {maps.shape}")
    if maps.shape[0] == len(present):
        return maps
    if present and maps.shape[0] >= max(present):
        return maps[[c - 1 for c in present]]
    raise ValueError(
        f"class_maps has {maps.shape[0]} channels; expected len(present_classes) = {len(present)} "
        f"(present classes only) or a full stack of at least {max(present, default=0)} (indexed by class - 1)"
    )


def dense_crf(
    image,
    probs,
    *,
    n_iter: int = 10,
    gaussian_sxy: float = 3.0,
    gaussian_compat: float = 3.0,
    bilateral_sxy: float = 80.0,
    bilateral_srgb: float = 13.0,
    bilateral_compat: float = 10.0,
) -> np.ndarray:
    """Mean-field inference of the dense CRF; returns ``K x H x W`` float32 marginals.

    image: ``H x W x 3`` RGB, converted to C-contiguous uint8 (values must already be 0..255).
    probs: ``K x H x W`` scores in [0, 1], used as given: unary = -log(clip(p, 1e-5, 1)).
    """
    import pydensecrf.densecrf as dcrf

    img = _to_numpy(image)
    p = _to_numpy(probs)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"image must be H x W x 3, got shape {img.shape}")
    if p.ndim != 3:
        raise ValueError(f"probs must be K x H x W, got shape {p.shape}")
    if img.shape[:2] != p.shape[1:]:
        raise ValueError(f"image is {img.shape[0]}x{img.shape[1]} but probs are {p.shape[1]}x{p.shape[2]}")
    k, h, w = p.shape
    if k == 0:
        raise ValueError("probs must have at least one channel")
    if img.dtype != np.uint8:
        if img.min() < 0 or img.max() > 255:
            raise ValueError("image values must lie in 0..255 (uint8 RGB)")
        img = img.astype(np.uint8)
    img = np.require(img, requirements=["C", "W"])  # pydensecrf needs a writable C buffer

    unary = -np.log(np.clip(p.astype(np.float32), _UNARY_CLIP, 1.0)).reshape(k, -1)
    crf = dcrf.DenseCRF2D(w, h, k)
    crf.setUnaryEnergy(np.ascontiguousarray(unary, dtype=np.float32))
    crf.addPairwiseGaussian(sxy=gaussian_sxy, compat=gaussian_compat)
    crf.addPairwiseBilateral(sxy=bilateral_sxy, srgb=bilateral_srgb, rgbim=img, compat=bilateral_compat)
    q = crf.inference(int(n_iter))
    return np.asarray(q, dtype=np.float32).reshape(k, h, w)


def crf_probabilities(image, class_maps, present_classes: Sequence[int], alpha: float, **crf_params) -> np.ndarray:
    """CRF marginals over ``[M_bg(alpha), M_c for present classes]`` (``(1 + n_present) x H x W``)."""
    maps = select_present_maps(class_maps, present_classes)
    bg = background_map(maps, alpha)
    stack = np.concatenate([bg[None], maps], axis=0)
    if stack.shape[0] == 1:  # nothing present: background everywhere, the CRF has nothing to decide
        img = _to_numpy(image)
        if img.shape[:2] != stack.shape[1:]:
            raise ValueError(f"image is {img.shape[:2]} but class maps are {stack.shape[1:]}")
        return np.ones_like(stack, dtype=np.float32)
    return dense_crf(image, stack, **{**CRF_DEFAULTS, **crf_params})


def channels_to_voc(channel_labels: np.ndarray, present_classes: Sequence[int]) -> np.ndarray:
    """Map channel indices (0 = bg, k = k-th present class) to VOC indices (uint8)."""
    lut = np.array([0] + _check_present(present_classes), dtype=np.uint8)
    return lut[channel_labels]


def crf_confident_labels(
    image,
    class_maps,
    present_classes: Sequence[int],
    alpha_low: float = 4.0,
    alpha_high: float = 32.0,
    **crf_params,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """CRF at both alphas; returns ``(fg_label, bg_label, probs_low, probs_high)``.

    fg_label: argmax of the low-alpha CRF (its foreground is trusted), VOC indices, ``H x W`` uint8.
    bg_label: argmax of the high-alpha CRF (its background is trusted), VOC indices, uint8.
    probs_low / probs_high: the ``(1 + n_present) x H x W`` float32 marginals that
    :func:`vitaff.affinity.affinity_label_map` consumes.
    """
    probs_low = crf_probabilities(image, class_maps, present_classes, alpha_low, **crf_params)
    probs_high = crf_probabilities(image, class_maps, present_classes, alpha_high, **crf_params)
    fg_label = channels_to_voc(probs_low.argmax(axis=0), present_classes)
    bg_label = channels_to_voc(probs_high.argmax(axis=0), present_classes)
    return fg_label, bg_label, probs_low, probs_high


def crf_argmax_labels(
    image, class_maps, present_classes: Sequence[int], alpha: float = 4.0, **crf_params
) -> np.ndarray:
    """The ``crf`` baseline: argmax of the CRF over ``[M_bg(alpha), M_c...]`` in VOC indices (uint8)."""
    probs = crf_probabilities(image, class_maps, present_classes, alpha, **crf_params)
    return channels_to_voc(probs.argmax(axis=0), present_classes)
