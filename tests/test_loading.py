"""Input pipelines (vitaff.data.loading): the batch augmentation equals torchvision's per-image
ColorJitter, workers are seeded, draft decoding, and bf16 training steps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from vitaff.data.loading import adjust_hue, augment_batch, autocast, draw_augment, make_loader, resolve_workers
from vitaff.data.voc import load_image


def per_image_reference(x: torch.Tensor, jitter, seed: int) -> torch.Tensor:
    """The per-image pipeline the batch path replaces: flip, torchvision v2 ColorJitter, clamp."""
    from torchvision.transforms import v2

    torch.manual_seed(seed)
    cj = v2.ColorJitter(*jitter)
    out = []
    for xi in x:
        if torch.rand(()) < 0.5:
            xi = xi.flip(-1)
        out.append(cj(xi).clamp_(0, 1))
    return torch.stack(out)


def batch_path(x: torch.Tensor, jitter, seed: int, vectorised: bool) -> torch.Tensor:
    from vitaff.data.loading import _augment_vectorised

    torch.manual_seed(seed)
    aug = torch.stack([draw_augment(True, jitter) for _ in range(len(x))])
    if vectorised:  # the accelerator's path, run here on the CPU
        return _augment_vectorised(x, aug, normalise=False)
    return augment_batch(x, aug, normalise=False)


@pytest.mark.parametrize("vectorised", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_batch_jitter_without_hue_is_torchvisions_bit_for_bit(seed, vectorised):
    """Same random draws in the same order, same arithmetic: the embedded default (no hue) trains
    on exactly the samples of the per-image pipeline."""
    x = torch.rand(6, 3, 40, 52, generator=torch.Generator().manual_seed(seed))
    jitter = (0.3, 0.3, 0.3, 0.0)
    assert torch.equal(batch_path(x, jitter, seed, vectorised), per_image_reference(x, jitter, seed))


@pytest.mark.parametrize("vectorised", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
def test_batch_jitter_with_hue_matches_torchvision_to_float_rounding(seed, vectorised):
    x = torch.rand(6, 3, 40, 52, generator=torch.Generator().manual_seed(seed))
    jitter = (0.3, 0.3, 0.3, 0.1)
    ref, out = per_image_reference(x, jitter, seed), batch_path(x, jitter, seed, vectorised)
    assert (out - ref).abs().max() < 1e-5
    assert not torch.allclose(out, x, atol=1e-2)  # something was applied


def test_hue_matches_torchvision_including_grey_and_saturated_pixels():
    import torchvision.transforms.v2.functional as TF

    x = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    x[:, :, 0] = 0.5  # grey rows (chroma 0)
    x[:, 0, 1], x[:, 1, 1], x[:, 2, 1] = 1.0, 0.0, 0.0  # pure red
    x[:, :, 2, :8] = torch.tensor([0.2, 0.9, 0.9]).view(1, 3, 1)  # ties between two maxima
    shifts = torch.tensor([-0.5, -0.1, 0.07, 0.5])
    ref = torch.stack([TF.adjust_hue(x[i], float(shifts[i])) for i in range(4)])
    assert (adjust_hue(x, shifts.view(-1, 1, 1, 1)) - ref).abs().max() < 1e-5


def test_augment_parameters_follow_the_configured_ranges():
    torch.manual_seed(0)
    aug = torch.stack([draw_augment(True, (0.3, 0.2, 0.1, 0.05)) for _ in range(4000)])
    assert 0.45 < aug[:, 0].mean() < 0.55
    for k, (lo, hi) in enumerate([(0.7, 1.3), (0.8, 1.2), (0.9, 1.1), (-0.05, 0.05)]):
        f = aug[:, 5 + k]
        assert lo <= f.min() and f.max() <= hi and abs(f.mean() - (lo + hi) / 2) < 0.02 * (hi - lo)
    assert sorted(aug[0, 1:5].tolist()) == [0, 1, 2, 3]
    assert torch.isnan(draw_augment(True, (0.3, 0.3, 0.3, 0.0))[8])  # zero hue: not drawn, not applied


class _Noise(torch.utils.data.Dataset):
    def __len__(self):
        return 12

    def __getitem__(self, i):
        return torch.rand(3), draw_augment(True, (0.3, 0.3, 0.3, 0.1)), torch.tensor(np.random.rand())


def _epoch(workers: int, seed: int):
    loader = make_loader(_Noise(), 4, workers=workers, shuffle=True, generator=torch.Generator().manual_seed(seed))
    return [torch.cat([b.flatten() for b in batch]) for batch in loader]


def test_same_seed_and_worker_count_gives_the_same_samples():
    a, b = _epoch(2, 5), _epoch(2, 5)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(torch.cat(a), torch.cat(_epoch(2, 6)))
    # workers draw different streams (numpy too: seeded per worker, not inherited from the parent)
    first, second = a[0][-4:], a[1][-4:]
    assert not torch.equal(first, second)


def test_worker_rule():
    assert resolve_workers(None, 8, "cpu") == 0
    assert resolve_workers(None, 8, "cuda") == 7
    assert resolve_workers(None, 1, "cuda") == 1
    assert resolve_workers(3, 8, "cpu") == 3


def test_draft_decoding_only_when_the_target_is_at_most_half(tmp_path):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (400, 600, 3), dtype=np.uint8)
    path = tmp_path / "a.jpg"
    Image.fromarray(image).save(path, quality=95)
    assert load_image(path).shape == (400, 600, 3)
    assert load_image(path, draft=150).shape == (200, 300, 3)  # 1/2: 1/4 would be below 150
    assert load_image(path, draft=100).shape == (100, 150, 3)  # 1/4: the smallest at least 100 x 100
    assert load_image(path, draft=(50, 70)).shape == (50, 75, 3)  # 1/8
    assert load_image(path, draft=201).shape == (400, 600, 3)  # 400 < 2 * 201: decoded whole
    png = tmp_path / "a.png"
    Image.fromarray(image).save(png)
    assert load_image(png, draft=50).shape == (400, 600, 3)  # not a JPEG


class _Probe(torch.nn.Module):
    """A small conv net that records the dtype its first layer computes in."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.head = torch.nn.Linear(8, 20)
        self.seen = []

    def forward(self, x):
        h = self.conv(x)
        self.seen.append(h.dtype)
        return self.head(F.relu(h).mean((-2, -1)))


def _one_step(precision: str):
    torch.manual_seed(0)
    model = _Probe()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    y = (torch.rand(4, 20, generator=torch.Generator().manual_seed(2)) > 0.8).float()
    with autocast("cpu", precision):
        logits = model(x)
    loss = F.multilabel_soft_margin_loss(logits.float(), y)
    loss.backward()
    opt.step()
    return model, loss.item()


def test_bf16_training_step_agrees_with_fp32_and_uses_bf16():
    """One SGD step under bf16 autocast: loss within 1e-2 relative, weights within 1e-3 of fp32
    (bf16 keeps 8 bits of mantissa: about 0.4 % per operation), weights kept fp32."""
    ref, loss_ref = _one_step("fp32")
    low, loss_low = _one_step("bf16")
    assert ref.seen == [torch.float32] and low.seen == [torch.bfloat16]
    assert abs(loss_low - loss_ref) <= 1e-2 * abs(loss_ref)
    for p, q in zip(ref.parameters(), low.parameters()):
        assert q.dtype == torch.float32
        assert (p - q).abs().max() < 1e-3
    with pytest.raises(ValueError, match="precision"):
        autocast("cpu", "fp16")


def test_classifier_training_with_workers_is_reproducible_and_matches_the_batch_path(tmp_path):
    """Two workers, same seed: the same losses twice; the augmentation applied in the workers (CPU)
    and on the batch (an accelerator's path) give the same samples."""
    from vitaff.classifier import ClassificationSet, TrainSettings, train
    from vitaff.data.synthetic import SyntheticConfig, generate_voc

    generate_voc(tmp_path, SyntheticConfig(seed=1, n_train=8, n_val=1, size_range=(64, 72)))
    voc = tmp_path / "VOCdevkit" / "VOC2012"
    ids = sorted(p.stem for p in (voc / "JPEGImages").glob("*.jpg"))[:8]
    labels = [[3]] * len(ids)

    def run(workers):
        data = ClassificationSet(voc, ids, labels, 32, augment=True, color_jitter=(0.3, 0.3, 0.3, 0.1))
        settings = TrainSettings(epochs=2, batch_size=4, lr=0.01, seed=3, workers=workers)
        torch.manual_seed(0)
        return [row["loss"] for row in train(_Probe(), data, None, settings, "cpu")]

    assert run(2) == run(2)
    data = ClassificationSet(voc, ids, labels, 32, augment=True, color_jitter=(0.3, 0.3, 0.3, 0.1))
    torch.manual_seed(4)
    here = torch.stack([data[i][0] for i in range(4)])
    data.augment_here = False
    torch.manual_seed(4)
    items = [data[i] for i in range(4)]
    batch = augment_batch(torch.stack([x for x, _, _ in items]), torch.stack([a for _, _, a in items]))
    assert torch.equal(here, batch)


def test_image_batches_in_order_with_workers(tmp_path):
    from vitaff.data.loading import image_batches

    rng = np.random.default_rng(0)
    paths = []
    for i in range(5):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(rng.integers(0, 255, (8 + i, 9, 3), dtype=np.uint8)).save(paths[-1])
    for workers in (0, 2):
        batches = list(image_batches(paths, 2, workers))
        assert [len(b) for b in batches] == [2, 2, 1]
        images = [im for b in batches for im in b]
        assert all(isinstance(im, np.ndarray) and im.flags.writeable for im in images)
        assert all(np.array_equal(im, load_image(p)) for im, p in zip(images, paths))
