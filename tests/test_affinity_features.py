"""AffinityNet's backbone features: the stem's stages, optionally with the classifier's tokens."""

import numpy as np
import pytest
import torch

from vitaff.affinity_training import AffinityModel, image_affinity, load_affinity_model, save_affinity_model
from vitaff.classifier import save_classifier
from vitaff.models import create_model


def _classifier():
    torch.manual_seed(0)
    model = create_model("vit_hybrid_synth", num_classes=20, img_size=64)
    model.img_size = 64
    return model


def test_stem_tokens_adds_the_token_map_and_trains_the_transformer():
    stem = AffinityModel(_classifier(), stride=8)
    both = AffinityModel(_classifier(), stride=8, features="stem_tokens")
    assert len(both.head.reduce) == len(stem.head.reduce) + 1
    x = torch.randn(2, 3, 64, 64)
    out = both(x)
    assert out.shape == (2, both.head.out_dim, 8, 8) and stem(x).shape[-2:] == (8, 8)
    out.mean().backward()
    assert both.backbone.blocks[-1].mlp.fc2.weight.grad.abs().sum() > 0
    # whole padded images of another size: the token map is resized onto the image's grid
    aff = image_affinity(both, np.zeros((70, 90, 3), np.uint8), 5, "cpu")
    assert aff.shape[1:] == (9, 12)
    with pytest.raises(ValueError, match="features"):
        AffinityModel(_classifier(), features="tokens")


def test_features_survive_save_and_load(tmp_path):
    classifier = _classifier()
    save_classifier(classifier, {"model": "vit_hybrid_synth", "img_size": 64}, tmp_path / "cls.pt")
    model = AffinityModel(classifier, stride=8, features="stem_tokens")
    save_affinity_model(model, tmp_path / "cls.pt", tmp_path / "aff.pt")
    loaded = load_affinity_model(tmp_path / "aff.pt", tmp_path / "cls.pt")
    assert loaded.features == "stem_tokens"
    x = torch.randn(1, 3, 64, 64)
    model.eval()
    assert torch.allclose(loaded(x), model(x), atol=1e-6)
