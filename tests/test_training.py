"""Resumable training (vitaff.training): the checkpointed RNG states round-trip, a run killed after
an epoch resumes to the weights of an uninterrupted run (classifier and AffinityNet loops), and
AffinityNet's backbone learns at ``lr * backbone_lr_mult``."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from vitaff import affinity_training, classifier, training
from vitaff.affinity_training import AffinityModel, train_affinity
from vitaff.classifier import TrainSettings
from vitaff.models import create_model


def _draws():
    return (torch.rand(3).tolist(), np.random.rand(3).tolist(), [random.random() for _ in range(3)])


def test_rng_state_round_trips_through_a_checkpoint_file(tmp_path):
    torch.manual_seed(1), np.random.seed(2), random.seed(3)
    _draws()
    state = training.rng_state()
    if not torch.cuda.is_available():
        assert state["cuda"] is None  # nothing to save, and restoring it is a no-op
    torch.save(state, tmp_path / "rng.pt")
    want = _draws()
    torch.manual_seed(9), np.random.seed(9), random.seed(9)
    training.set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=False))
    assert _draws() == want


def test_cuda_rng_states_are_saved_and_restored_per_device(monkeypatch):
    """With CUDA (simulated here), every device's generator state goes into the checkpoint and
    comes back to the same device."""
    states = [torch.tensor([1, 2], dtype=torch.uint8), torch.tensor([3, 4], dtype=torch.uint8)]
    restored = {}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: [s.clone() for s in states])
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda s, device: restored.__setitem__(device, s.tolist()))
    state = training.rng_state()
    assert [s.tolist() for s in state["cuda"]] == [[1, 2], [3, 4]]
    training.set_rng_state(state)
    assert restored == {0: [1, 2], 1: [3, 4]}
    # an older checkpoint (CPU state only) still restores
    training.set_rng_state({"torch": torch.get_rng_state()})


class _NoisySet(Dataset):
    """Inputs with noise from numpy's and Python's global generators (as augmentations draw)."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        noise = float(np.random.rand()) + random.random()
        return self.x[i] + 0.1 * noise, self.y[i]


class _Stop(Exception):
    pass


def _kill_after_first_checkpoint(monkeypatch, module):
    """The loop's checkpoint is written, then the run dies (as a SIGKILL between epochs)."""
    real = module.checkpoint

    def checkpoint_then_die(*args):
        real(*args)
        raise _Stop

    monkeypatch.setattr(module, "checkpoint", checkpoint_then_die)


def _scramble_global_rngs():
    """A new process starts from other global RNG states than the killed one had."""
    torch.manual_seed(1234), np.random.seed(1234), random.seed(1234)


def _same_weights(a, b):
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(p, q, rtol=0, atol=0, msg=name)


def _classifier_run(tmp_path, monkeypatch=None):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Dropout(0.5), torch.nn.Linear(16, 20))
    g = torch.Generator().manual_seed(5)
    data = _NoisySet(torch.randn(10, 6, generator=g), (torch.rand(10, 20, generator=g) > 0.7).float())
    settings = TrainSettings(epochs=3, batch_size=4, lr=0.1, seed=3)
    return model, data, settings


def test_classifier_resumes_to_the_uninterrupted_weights(tmp_path, monkeypatch):
    model, data, settings = _classifier_run(tmp_path)
    np.random.seed(0), random.seed(0)
    ref_history = classifier.train(model, data, None, settings, "cpu")
    ref = model

    path = tmp_path / "classifier.pt"
    with monkeypatch.context() as m:
        _kill_after_first_checkpoint(m, classifier)
        killed, data, settings = _classifier_run(tmp_path)
        np.random.seed(0), random.seed(0)
        with pytest.raises(_Stop):
            classifier.train(killed, data, None, settings, "cpu", resume_path=path)
    _scramble_global_rngs()
    resumed, data, settings = _classifier_run(tmp_path)
    history = classifier.train(resumed, data, None, settings, "cpu", resume_path=path)
    assert history == ref_history
    _same_weights(resumed, ref)


def _affinity_model():
    torch.manual_seed(0)
    backbone = create_model("vit_hybrid_synth", num_classes=20, img_size=32)
    backbone.img_size = 32
    return AffinityModel(backbone, stride=8)


class _AffinitySet(Dataset):
    def __init__(self):
        g = torch.Generator().manual_seed(7)
        self.x = torch.randn(4, 3, 32, 32, generator=g)
        self.grid = torch.randint(0, 3, (4, 4, 4), generator=g)
        self.grid[:, 0, 0] = 255

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i] + 0.1 * float(np.random.rand()), self.grid[i]


AFF = dict(epochs=2, batch_size=2, lr=0.05, momentum=0.9, weight_decay=1e-4, poly_power=0.9, radius=2, seed=1,
           device="cpu")


def test_affinity_training_resumes_to_the_uninterrupted_weights(tmp_path, monkeypatch):
    ref = _affinity_model()
    np.random.seed(0)
    ref_history = train_affinity(ref, _AffinitySet(), backbone_lr_mult=0.5, **AFF)

    path = tmp_path / "affinitynet.pt"
    with monkeypatch.context() as m:
        _kill_after_first_checkpoint(m, affinity_training)
        np.random.seed(0)
        with pytest.raises(_Stop):
            train_affinity(_affinity_model(), _AffinitySet(), backbone_lr_mult=0.5, resume_path=path, **AFF)
    _scramble_global_rngs()
    resumed = _affinity_model()
    history = train_affinity(resumed, _AffinitySet(), backbone_lr_mult=0.5, resume_path=path, **AFF)
    assert history == ref_history
    _same_weights(resumed, ref)


def test_backbone_learns_at_backbone_lr_mult():
    """backbone_lr_mult scales the backbone's steps only: at 0 the backbone's parameters stay as
    they were while the head's move; the optimiser's groups say lr * mult and lr."""
    model = _affinity_model()
    before = {k: v.clone() for k, v in model.named_parameters()}
    seen = []
    real_sgd = torch.optim.SGD

    class RecordingSGD(real_sgd):
        def step(self, *a, **kw):
            seen.append([(g["lr"], len(g["params"])) for g in self.param_groups])
            return super().step(*a, **kw)

    with pytest.MonkeyPatch.context() as m:
        m.setattr(torch.optim, "SGD", RecordingSGD)
        train_affinity(model, _AffinitySet(), backbone_lr_mult=0.0, **{**AFF, "epochs": 1})
    moved = {k for k, v in model.named_parameters() if not torch.equal(v, before[k])}
    assert moved and all(k.startswith("head.") for k in moved)
    assert any(k.startswith("head.") for k in moved)
    n_backbone, n_head = len(list(model.backbone.parameters())), len(list(model.head.parameters()))
    assert seen[0] == [(0.0, n_backbone), (AFF["lr"], n_head)]

    model = _affinity_model()
    seen.clear()
    with pytest.MonkeyPatch.context() as m:
        m.setattr(torch.optim, "SGD", RecordingSGD)
        train_affinity(model, _AffinitySet(), backbone_lr_mult=0.1, **{**AFF, "epochs": 1})
    assert seen[0] == [(pytest.approx(0.1 * AFF["lr"]), n_backbone), (AFF["lr"], n_head)]
    assert any(not torch.equal(p, before[f"backbone.{k}"]) for k, p in model.backbone.named_parameters())
