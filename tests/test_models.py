"""Model construction, timm parity and checkpoint loading (SPEC sections 1 and 5)."""

from __future__ import annotations

import logging

import pytest
import timm  # a required dependency: a broken install fails here, it is not skipped
import torch

from vitaff.models import CheckpointError, UnknownModelError, create_model, list_models, load_checkpoint

torch.set_num_threads(1)

SMALL = dict(img_size=32, patch_size=8, depth=2, embed_dim=32, num_heads=4, num_classes=5)


def _randomise(model, seed=0):
    """Non-trivial values everywhere (biases, LN affine, cls token) so parity tests can fail."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return model


def test_plain_vit_equals_timm():
    tm = _randomise(timm.create_model("vit_tiny_patch16_224", pretrained=False)).eval()
    vm = create_model("vit_tiny_patch16_224").eval()
    vm.load_state_dict(tm.state_dict(), strict=True)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        a, b = tm(x), vm(x)
        traced, _ = vm.forward_trace(x)
        feats = vm.forward_features(x)
    assert (a - b).abs().max() < 1e-5
    assert (a - traced).abs().max() < 1e-5  # explicit attention of the traced pass
    torch.testing.assert_close(vm.forward_head(feats), b)
    torch.testing.assert_close(feats, tm.forward_features(x), rtol=1e-5, atol=1e-5)


def test_hybrid_equals_timm():
    tm = _randomise(timm.create_model("vit_base_r50_s16_384", pretrained=False, img_size=96)).eval()
    vm = create_model("vit_base_r50_s16_384", img_size=96).eval()
    assert list(vm.state_dict()) == list(tm.state_dict())
    vm.load_state_dict(tm.state_dict(), strict=True)
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        a, b = tm(x), vm(x)
        feats = vm.forward_cnn_features(x)
    assert (a - b).abs().max() < 1e-5
    assert [f.shape[1] for f in feats] == [256, 512, 1024]
    assert [d["reduction"] for d in vm.cnn_feature_info] == [4, 8, 16]
    assert [d["num_chs"] for d in vm.cnn_feature_info] == [256, 512, 1024]
    assert [f.shape[-1] for f in feats] == [96 // 4, 96 // 8, 96 // 16]
    assert vm.patch_embed.grid_size == (6, 6)


@pytest.mark.parametrize("name", [n for n in list_models() if n.startswith(("vit_", "deit_")) and "synth" not in n])
def test_parameter_names_and_shapes_equal_timm(name):
    with torch.device("meta"):
        tm = timm.create_model(name, pretrained=False)
        vm = create_model(name)
    ts, vs = tm.state_dict(), vm.state_dict()
    assert list(vs) == list(ts)
    assert all(vs[k].shape == ts[k].shape for k in ts)


def test_synthetic_configs():
    vm = create_model("vit_synth_tiny", num_classes=4)
    assert vm.grid_size == (16, 16) and len(vm.blocks) == 4 and vm.embed_dim == 128
    hy = create_model("vit_hybrid_synth", num_classes=4)
    x = torch.randn(2, 3, 128, 128)
    feats = hy.forward_cnn_features(x)
    assert [tuple(f.shape[1:]) for f in feats] == [(64, 32, 32), (128, 16, 16)]
    assert hy.cnn_feature_info == [dict(num_chs=64, reduction=4), dict(num_chs=128, reduction=8)]
    assert hy(x).shape == (2, 4) and hy.grid_size == (16, 16)
    wide = create_model("vit_hybrid_synth", num_classes=4, channels=(64, 256), depth=2, embed_dim=64)
    assert wide.cnn_feature_info[-1]["num_chs"] == 256 and len(wide.blocks) == 2


def test_overrides_and_img_size():
    m = create_model("vit_tiny_patch16_224", img_size=448, num_classes=3, depth=2)
    assert m.pos_embed.shape == (1, 1 + 28 * 28, 192) and m.head.out_features == 3 and len(m.blocks) == 2
    assert m(torch.randn(1, 3, 448, 448)).shape == (1, 3)
    with pytest.raises(ValueError, match="token grid"):
        m(torch.randn(1, 3, 224, 224))
    dyn = create_model("vit_tiny_patch16_224", depth=1, dynamic_img_size=True)
    assert dyn(torch.randn(1, 3, 160, 160)).shape == (1, 1000)


def test_unknown_model_lists_names():
    with pytest.raises(UnknownModelError) as err:
        create_model("vit_huge_patch14_224")
    assert "vit_base_patch16_224" in str(err.value) and "vit_hybrid_synth" in str(err.value)
    assert isinstance(err.value, ValueError)


def test_plain_forward_trains():
    torch.manual_seed(0)
    m = create_model("vit_synth_tiny", **SMALL)
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    before = m.head.weight.detach().clone()
    losses = []
    for _ in range(5):
        loss = torch.nn.functional.cross_entropy(m(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert not torch.equal(before, m.head.weight)


# -- checkpoints ---------------------------------------------------------------------------------


@pytest.fixture()
def source():
    torch.manual_seed(1)
    return _randomise(create_model("vit_synth_tiny", **SMALL)).eval()


def _same_output(a, b, x=None):
    x = torch.randn(2, 3, 32, 32) if x is None else x
    with torch.no_grad():
        return (a(x) - b(x)).abs().max().item() < 1e-6


@pytest.mark.parametrize("fmt", ["plain.pth", "state_dict.pt", "model.bin", "module.pth", "plain.safetensors"])
def test_checkpoint_formats(tmp_path, source, fmt):
    sd = source.state_dict()
    path = tmp_path / fmt
    if fmt.endswith(".safetensors"):
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    elif fmt.startswith("state_dict"):
        torch.save({"state_dict": sd, "epoch": 3}, path)
    elif fmt.startswith("model"):
        torch.save({"model": sd, "optimizer": {"lr": 0.1}}, path)
    elif fmt.startswith("module"):
        torch.save({"module." + k: v for k, v in sd.items()}, path)
    else:
        torch.save(sd, path)
    loaded = create_model("vit_synth_tiny", pretrained=path, **SMALL).eval()
    assert _same_output(source, loaded)
    fresh = create_model("vit_synth_tiny", **SMALL).eval()
    assert not _same_output(source, fresh)


def test_timm_checkpoint_loads(tmp_path):
    tm = _randomise(timm.create_model("vit_tiny_patch16_224", pretrained=False, depth=2)).eval()
    path = tmp_path / "timm.pth"
    torch.save(tm.state_dict(), path)
    vm = create_model("vit_tiny_patch16_224", pretrained=str(path), depth=2).eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert (tm(x) - vm(x)).abs().max() < 1e-5


def test_wrong_shapes_name_keys_and_file(tmp_path, source):
    path = tmp_path / "ckpt.pth"
    torch.save(source.state_dict(), path)
    with pytest.raises(CheckpointError) as err:
        create_model("vit_synth_tiny", pretrained=path, **dict(SMALL, embed_dim=64))
    msg = str(err.value)
    assert str(path) in msg and "blocks.0.attn.qkv.weight" in msg and "wrong shapes" in msg


def test_missing_and_unexpected_keys(tmp_path, source):
    sd = source.state_dict()
    del sd["blocks.1.mlp.fc2.bias"]
    sd["blocks.7.extra"] = torch.zeros(1)
    path = tmp_path / "broken.pth"
    torch.save(sd, path)
    with pytest.raises(CheckpointError) as err:
        create_model("vit_synth_tiny", pretrained=path, **SMALL)
    msg = str(err.value)
    assert "missing keys" in msg and "blocks.1.mlp.fc2.bias" in msg
    assert "unexpected keys" in msg and "blocks.7.extra" in msg and "broken.pth" in msg
    with pytest.raises(ValueError):
        load_checkpoint(create_model("vit_synth_tiny", **SMALL), path)
    with pytest.raises(CheckpointError, match="does not exist"):
        create_model("vit_synth_tiny", pretrained=tmp_path / "nope.pth", **SMALL)


def test_pos_embed_resampled_for_other_img_size(tmp_path, source):
    from timm.layers import resample_abs_pos_embed

    path = tmp_path / "ckpt.safetensors"
    from safetensors.torch import save_file

    save_file(source.state_dict(), str(path))
    big = create_model("vit_synth_tiny", pretrained=path, **dict(SMALL, img_size=48)).eval()
    assert big.pos_embed.shape == (1, 1 + 6 * 6, 32)
    want = resample_abs_pos_embed(source.pos_embed.detach(), [6, 6], [4, 4], num_prefix_tokens=1)
    torch.testing.assert_close(big.pos_embed.detach(), want)
    torch.testing.assert_close(big.blocks[1].mlp.fc1.weight, source.blocks[1].mlp.fc1.weight)
    assert big(torch.randn(1, 3, 48, 48)).shape == (1, 5)


def test_head_of_other_class_count_is_reinitialised(tmp_path, source, caplog):
    path = tmp_path / "ckpt.pth"
    torch.save(source.state_dict(), path)
    with caplog.at_level(logging.WARNING):
        m = create_model("vit_synth_tiny", pretrained=path, **dict(SMALL, num_classes=20))
    assert m.head.weight.shape == (20, 32)
    assert "head" in caplog.text
    torch.testing.assert_close(m.blocks[0].attn.qkv.weight, source.blocks[0].attn.qkv.weight)
    with pytest.raises(CheckpointError, match="head.weight"):
        load_checkpoint(create_model("vit_synth_tiny", **dict(SMALL, num_classes=20)), path)
