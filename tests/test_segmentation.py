"""Step 3 (SPEC 9): the segmentation network, its initialisation rules, training and inference."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from conftest import make_voc, write_palette_png
from vitaff import segmentation as sg
from vitaff.config import ConfigError, effective_config, load_config
from vitaff.data.voc import load_mask
from vitaff.metrics import confusion_matrix

REPO = Path(__file__).resolve().parents[1]


def seg_config(**overrides) -> dict:
    """The real run's ``segmentation`` section with ``overrides``."""
    cfg = effective_config({"dataset": {"root": "/x"}, "segmentation": overrides})
    return cfg["segmentation"]


def tiny_stem_config(**overrides) -> dict:
    """The embedded network (classifier stem) from scratch, shrunk for CPU tests."""
    return seg_config(network="deeplabv3_classifier_stem", init="scratch", atrous_rates=[1, 2], aspp_channels=8,
                      crop_size=32, batch_size=4, accumulation_steps=2, iterations=6, lr=0.01,
                      checkpoint_every=2, num_workers=0, **overrides)


# ------------------------------------------------------------------------------------ config / init

def test_real_defaults_are_the_deeplab_recipe():
    seg = load_config(REPO / "config.yaml", {"dataset.root": "/data/VOCdevkit/VOC2012"})["segmentation"]
    recipe = {"network": "deeplabv3_resnet101", "init": "imagenet", "allow_mask_pretrained": False,
              "crop_size": 321, "batch_size": 10, "accumulation_steps": 2, "iterations": 20000, "lr": 0.00025,
              "head_lr_mult": 10, "momentum": 0.9, "weight_decay": 0.0005, "poly_power": 0.9,
              "scale_range": [0.5, 1.5], "test_scales": [0.5, 0.75, 1.0, 1.25, 1.5], "test_flip": True,
              "crf": {"iterations": 10, "gaussian_sxy": 1, "gaussian_compat": 3, "bilateral_sxy": 67,
                      "bilateral_srgb": 3, "bilateral_compat": 4}, "gt_reference": False}
    assert {k: seg[k] for k in recipe} == recipe
    # a config file that sets only dataset.root gets the same from the schema
    assert {k: seg_config()[k] for k in recipe} == recipe


def test_embedded_overrides_only_what_it_names():
    seg = load_config(REPO / "config.yaml")["segmentation"]
    assert seg["network"] == "deeplabv3_classifier_stem" and seg["init"] == "classifier" and seg["gt_reference"]
    # nested keys merge key by key: the CRF's other DeepLab constants stay
    assert seg["crf"]["bilateral_sxy"] != 67 and seg["crf"]["bilateral_srgb"] == 3 and seg["crf"]["iterations"] == 10


def test_mask_pretrained_init_is_refused_unless_allowed():
    raw = {"dataset": {"root": "/x"}, "segmentation": {"init": "mask_pretrained"}}
    with pytest.raises(ConfigError, match=r"segmentation\.init: mask_pretrained .*segmentation\.allow_mask_pretrained: true"):
        effective_config(copy.deepcopy(raw))
    raw["segmentation"]["allow_mask_pretrained"] = True
    assert effective_config(raw)["segmentation"]["init"] == "mask_pretrained"


@pytest.mark.parametrize("overrides, message", [
    ({"network": "deeplabv3_classifier_stem", "init": "imagenet"}, r"segmentation\.init: 'imagenet' does not apply"),
    ({"init": "classifier"}, r"segmentation\.init: 'classifier' does not apply"),
    ({"batch_size": 10, "accumulation_steps": 3}, r"segmentation\.batch_size: 10 is not a multiple"),
    ({"batch_size": 4, "accumulation_steps": 4}, r"segmentation\.batch_size: .*at least 2"),
])
def test_inconsistent_keys_are_named(overrides, message):
    with pytest.raises(ConfigError, match=message):
        seg_config(**overrides)


def test_embedded_override_errors_name_the_embedded_key():
    raw = yaml.safe_load((REPO / "config.yaml").read_text())
    raw["embedded"]["segmentation"]["init"] = "imagenet"
    with pytest.raises(ConfigError, match=r"config key embedded\.segmentation\.init"):
        effective_config(raw)


@pytest.fixture(scope="module")
def resnet101_state():
    import torchvision

    torch.manual_seed(0)
    return torchvision.models.resnet101().state_dict()


@pytest.mark.parametrize("layout", ["torchvision", "timm", "mmpretrain_wrapped"])
def test_imagenet_backbone_loads_from_both_layouts(tmp_path, resnet101_state, layout):
    if layout == "timm":
        import timm

        torch.manual_seed(1)
        state = timm.create_model("resnet101", pretrained=False).state_dict()
        assert set(state) == set(resnet101_state)  # timm's resnet101 uses torchvision's names
    elif layout == "torchvision":
        state = resnet101_state
    else:  # mmpretrain: {"state_dict": {"backbone.conv1.weight": ...}}, the head under another prefix
        state = {"state_dict": {f"backbone.{k}": v for k, v in resnet101_state.items() if not k.startswith("fc.")}}
    path = tmp_path / "resnet101.pth"
    torch.save(state, path)
    model = sg.build_network(seg_config(checkpoint=str(path)))
    own = model.network.backbone.state_dict()
    flat = state.get("state_dict", state)
    flat = {k.removeprefix("backbone."): v for k, v in flat.items()}
    assert set(own) == {k for k in flat if not k.startswith("fc.")}
    for k, v in own.items():
        assert torch.equal(v, flat[k]), k
    # output stride 8: the last stage is dilated, not strided
    layer4 = model.network.backbone.layer4
    assert layer4[0].conv2.stride == (1, 1) and layer4[1].conv2.dilation == (4, 4)


def test_segmentation_checkpoint_is_refused_as_imagenet_init(tmp_path):
    """A checkpoint with a segmentation head (torchvision's DeepLab layout: trained on masks)."""
    from torchvision.models.segmentation import deeplabv3_resnet50

    path = tmp_path / "deeplab.pth"
    torch.save(deeplabv3_resnet50(weights=None, weights_backbone=None, num_classes=21, aux_loss=True).state_dict(), path)
    with pytest.raises(ConfigError, match=r"segmentation head .*classifier\..*segmentation\.allow_mask_pretrained: true"):
        sg.build_network(seg_config(network="deeplabv3_resnet50", checkpoint=str(path)))
    # allowed explicitly, it loads (its auxiliary head dropped) and says so
    model = sg.build_network(seg_config(network="deeplabv3_resnet50", checkpoint=str(path), init="mask_pretrained",
                                        allow_mask_pretrained=True))
    saved = torch.load(path, weights_only=True)
    assert torch.equal(model.network.classifier[4].weight, saved["classifier.4.weight"])


def test_mask_pretrained_refused_by_the_library_too():
    seg = seg_config()
    seg["init"] = "mask_pretrained"  # bypassing the config check
    with pytest.raises(ConfigError, match="allow_mask_pretrained"):
        sg.build_network(seg)


def test_mask_trained_keys_of_other_libraries():
    assert sg.mask_trained_keys({"decode_head.conv_seg.weight": 0, "backbone.conv1.weight": 0}) == [
        "decode_head.conv_seg.weight"]
    assert sg.mask_trained_keys({"conv1.weight": 0, "fc.weight": 0, "layer1.0.conv1.weight": 0}) == []


def test_classifier_stem_init_copies_the_classifiers_stem(tmp_path):
    from vitaff.classifier import save_classifier
    from vitaff.models import create_model

    cls = {"model": "vit_hybrid_synth", "img_size": 64}
    torch.manual_seed(0)
    classifier = create_model("vit_hybrid_synth", num_classes=20, img_size=64)
    save_classifier(classifier, cls, tmp_path / "classifier.pt")
    model = sg.build_network(seg_config(network="deeplabv3_classifier_stem", init="classifier"),
                             classifier_path=tmp_path / "classifier.pt")
    stem = classifier.patch_embed.backbone.state_dict()
    for k, v in model.network.backbone.stem.state_dict().items():
        assert torch.equal(v, stem[k]), k
    logits = model(torch.rand(2, 3, 40, 48))
    assert logits.shape == (2, 21, 40, 48)


# ---------------------------------------------------------------------------------------- training

def test_augmentation_is_fixed_by_the_sample_seed(tmp_path):
    voc = make_voc(tmp_path, ids=("a", "b"), size=(24, 32))
    labels = [voc / "SegmentationClass" / f"{i}.png" for i in ("a", "b")]
    data = sg.SegmentationTrainSet(voc, ["a", "b"], labels, crop=40, scale_range=(0.5, 1.5), fill=(0.5, 0.5, 0.5))
    x, y = data[(0, 7)]
    assert x.shape == (3, 40, 40) and y.shape == (40, 40) and y.dtype == torch.int64
    # the image (at most 1.5 x 32 = 48 wide, 36 high) is padded to 40: mean colour, label 255
    assert (y == 255).any() and set(torch.unique(y).tolist()) <= {0, 8, 255}
    x2, y2 = data[(0, 7)]
    assert torch.equal(x, x2) and torch.equal(y, y2)
    x3, _ = data[(0, 8)]
    assert not torch.equal(x, x3)


def test_batches_depend_on_the_iteration_alone():
    full = list(sg.iteration_batches(5, 3, seed=0, start=0, stop=6))
    assert list(sg.iteration_batches(5, 3, seed=0, start=4, stop=6)) == full[4:]
    # every pass over the data holds every image once
    order = [i for batch in full for i, _ in batch]
    assert sorted(order[:5]) == sorted(order[5:10]) == list(range(5))
    assert len({s for batch in full for _, s in batch}) == 18


def _tiny_training(tmp_path):
    voc = make_voc(tmp_path, ids=("a", "b", "c"), size=(24, 32))
    ids = ["a", "b", "c"]
    labels = [voc / "SegmentationClass" / f"{i}.png" for i in ids]
    seg = tiny_stem_config()

    def fresh():
        torch.manual_seed(0)
        return sg.build_network(seg, classifier_model="vit_hybrid_synth")

    data = sg.SegmentationTrainSet(voc, ids, labels, crop=32, fill=(0.5, 0.5, 0.5))
    kwargs = dict(iterations=6, batch_size=4, accumulation_steps=2, lr=0.01, head_lr_mult=10, momentum=0.9,
                  weight_decay=5e-4, poly_power=0.9, seed=3, device="cpu", checkpoint_every=2)
    return fresh, data, kwargs


def test_killed_and_resumed_training_gives_the_same_weights(tmp_path, monkeypatch):
    fresh, data, kwargs = _tiny_training(tmp_path)
    straight = fresh()
    history = sg.train_network(straight, data, **kwargs)
    assert [h["iteration"] for h in history] == [2, 4, 6] and all(np.isfinite(h["loss"]) for h in history)

    class Killed(Exception):
        pass

    real_checkpoint = sg.checkpoint
    calls = []

    def dies_after_two_checkpoints(*args, **kw):
        real_checkpoint(*args, **kw)
        calls.append(1)
        if len(calls) == 2:
            raise Killed

    path = tmp_path / "resume.pt"
    monkeypatch.setattr(sg, "checkpoint", dies_after_two_checkpoints)
    with pytest.raises(Killed):
        sg.train_network(fresh(), data, resume_path=path, **kwargs)
    monkeypatch.setattr(sg, "checkpoint", real_checkpoint)
    resumed = fresh()
    torch.manual_seed(123)  # the resumed run does not depend on the global RNG it finds
    history2 = sg.train_network(resumed, data, resume_path=path, **kwargs)
    assert history2 == history
    for (k, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k


def test_training_lowers_the_loss_and_freezes_backbone_batchnorm(tmp_path):
    fresh, data, kwargs = _tiny_training(tmp_path)
    kwargs.update(iterations=30, checkpoint_every=10)
    model = fresh()
    history = sg.train_network(model, data, **kwargs)
    assert history[-1]["loss"] < history[0]["loss"]
    # the head's batch norm learns; the classifier stem has group norm only
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.network.classifier.modules())


class _TwoConvs(torch.nn.Module):
    """A network without batch norm or dropout: the update depends on the batch's pixels alone."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.backbone = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.classifier = torch.nn.Conv2d(4, 21, 1)

    def forward(self, x):
        return {"out": self.classifier(torch.relu(self.backbone(x)))}


def test_accumulation_gives_the_update_of_the_whole_batch(tmp_path):
    _, data, kwargs = _tiny_training(tmp_path)
    updates = {}
    for steps in (1, 2, 4):
        model = sg.SegmentationModel(_TwoConvs(), (0.5,) * 3, (0.5,) * 3)
        before = {k: v.clone() for k, v in model.state_dict().items()}
        sg.train_network(model, data, **dict(kwargs, iterations=1, accumulation_steps=steps, checkpoint_every=1))
        updates[steps] = {k: before[k] - v for k, v in model.state_dict().items()}
    for steps in (2, 4):
        for k, v in updates[1].items():
            assert v.abs().max() > 0 and torch.allclose(v, updates[steps][k], atol=1e-7, rtol=1e-4), (steps, k)


# --------------------------------------------------------------------------------------- inference

class _Constant(torch.nn.Module):
    """Logits that prefer class 8 left of the middle column and background right of it."""

    def forward(self, x):
        b, _, h, w = x.shape
        logits = torch.zeros(b, 21, h, w)
        logits[:, 8, :, : w // 2] = 50.0
        logits[:, 0, :, w // 2:] = 50.0
        return logits


def test_probabilities_average_scales_and_flips():
    model = _Constant()
    image = np.random.default_rng(0).integers(0, 255, (24, 32, 3), dtype=np.uint8)
    single = sg.class_probabilities(model, image)
    assert single.shape == (21, 24, 32) and torch.allclose(single.sum(0), torch.ones(24, 32))
    assert (single.argmax(0)[:, :16] == 8).all() and (single.argmax(0)[:, 16:] == 0).all()
    flipped = sg.class_probabilities(model, image, scales=(1.0,), flip=True)
    # the flipped pass puts class 8 on the right: averaged, both halves are undecided 50 / 50
    assert torch.allclose(flipped[8] + flipped[0], torch.ones(24, 32), atol=1e-4)
    assert torch.allclose(flipped[8], torch.full((24, 32), 0.5), atol=1e-2)
    multi = sg.class_probabilities(model, image, scales=(0.5, 1.0, 1.5))
    assert multi.shape == (21, 24, 32) and torch.allclose(multi.sum(0), torch.ones(24, 32), atol=1e-5)


def test_every_inference_mode_gives_labels_at_image_size():
    seg = tiny_stem_config()
    torch.manual_seed(0)
    model = sg.build_network(seg, classifier_model="vit_hybrid_synth").eval()
    image = np.random.default_rng(0).integers(0, 255, (30, 41, 3), dtype=np.uint8)
    labels = sg.segment_image(model, image, seg["test_scales"], True, seg["crf"])
    assert list(labels) == list(sg.MODES)
    for mode, lab in labels.items():
        assert lab.shape == (30, 41) and lab.dtype == np.uint8 and lab.max() <= 20, mode


def test_saved_model_reloads_with_its_metadata(tmp_path):
    seg = tiny_stem_config()
    torch.manual_seed(0)
    model = sg.build_network(seg, classifier_model="vit_hybrid_synth")
    sg.save_segmentation_model(model, seg, "pseudo_labels", tmp_path / "m.pt", classifier_model="vit_hybrid_synth")
    again, meta = sg.load_segmentation_model(tmp_path / "m.pt")
    assert meta["labels"] == "pseudo_labels" and meta["segmentation"]["init"] == "scratch"
    x = torch.rand(1, 3, 32, 32)
    model.eval()
    assert torch.equal(model(x), again(x))


def test_label_dir_score_is_the_metrics_code(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "pred").mkdir()
    (tmp_path / "gt").mkdir()
    cm = np.zeros((21, 21), np.int64)
    for i in ("a", "b"):
        gt = rng.choice([0, 3, 255], size=(9, 11)).astype(np.uint8)
        pred = rng.choice([0, 3, 7], size=(9, 11)).astype(np.uint8)
        write_palette_png(gt, tmp_path / "gt" / f"{i}.png")
        write_palette_png(pred, tmp_path / "pred" / f"{i}.png")
        cm += confusion_matrix(gt, pred)
    acc, n = sg.score_label_dir(tmp_path / "pred", ["a", "b", "no_mask"], lambda i: tmp_path / "gt" / f"{i}.png")
    assert n == 2 and np.array_equal(acc.matrix, cm)
    assert load_mask(tmp_path / "pred" / "a.png").shape == (9, 11)
