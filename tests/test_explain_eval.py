"""Segmentation and perturbation tests of the explanation maps (SPEC 3-4), hand-computed cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from vitaff import explain_eval as ev
from vitaff.config import ConfigError, load_config
from vitaff.models import create_model


# ---------------------------------------------------------------------------------- segmentation


def test_foreground_is_strictly_above_the_mean_of_each_image():
    maps = torch.tensor([[[0.0, 0.2], [0.9, 1.0]], [[0.4, 0.4], [0.4, 0.0]]])
    fg = ev.foreground(maps)  # means 0.525 and 0.3
    assert fg.tolist() == [[[False, False], [True, True]], [[True, True], [True, False]]]
    assert ev.foreground(torch.full((3, 3), 0.5)).sum() == 0  # constant map: no foreground


def test_image_average_precision_hand_computed():
    # scores [1-m, m] = [.25 .75 .5 | .75 .25 .5], targets [1-fg, fg] = [0 1 0 | 1 0 1]
    # thresholds .75: P 1 R 2/3; .5: P 3/4 R 1; .25: no new positive
    ap = ev.image_average_precision(np.array([[0.75, 0.25, 0.5]]), np.array([[1, 0, 1]]))
    assert ap == pytest.approx(2 / 3 * 1 + 1 / 3 * 3 / 4)
    assert ev.image_average_precision(np.zeros(0), np.zeros(0)) == 0.0  # NaN -> 0


def test_segmentation_scores_are_summed_over_the_dataset():
    # image A (2x2), threshold 0.4: pred [[1,0],[0,0]] -> bg_bg 2, bg_fg 0, fg_bg 1, fg_fg 1
    # image B (2x3), threshold 2.2/6:  pred [[1,0,0],[0,1,0]] -> bg_bg 3, bg_fg 1, fg_bg 1, fg_fg 1
    map_a = torch.tensor([[[1.0, 0.2], [0.0, 0.4]]])
    gt_a = torch.tensor([[[1, 1], [0, 0]]])
    map_b = torch.tensor([[[0.9, 0.0, 0.1], [0.0, 1.0, 0.2]]])
    gt_b = torch.tensor([[[0, 0, 0], [0, 1, 1]]])
    rows = ev.segmentation_rows({"m": map_a}, gt_a, [0]) + ev.segmentation_rows({"m": map_b}, gt_b, [1])
    assert [(r["bg_bg"], r["bg_fg"], r["fg_bg"], r["fg_fg"]) for r in rows] == [(2, 0, 1, 1), (3, 1, 1, 1)]
    table = ev.summarise_segmentation(pd.DataFrame(rows))
    row = table.iloc[0]
    assert row.pixel_accuracy == pytest.approx(100 * 7 / 10)  # not the mean of 3/4 and 4/6
    assert row.iou_bg == pytest.approx(100 * 5 / 8) and row.iou_fg == pytest.approx(100 * 2 / 5)
    assert row.mIoU == pytest.approx(100 * (5 / 8 + 2 / 5) / 2)
    aps = [ev.image_average_precision(map_a[0].numpy(), gt_a[0].numpy()),
           ev.image_average_precision(map_b[0].numpy(), gt_b[0].numpy())]
    assert row.mAP == pytest.approx(100 * np.mean(aps))
    assert row.n_images == 2


def test_gather_is_exact_and_rejects_missing_or_overlapping_shards():
    rng = np.random.default_rng(0)
    maps = torch.from_numpy(rng.random((5, 6, 6))).float()
    gt = torch.from_numpy(rng.integers(0, 2, (5, 6, 6)))
    whole = ev.summarise_segmentation(pd.DataFrame(ev.segmentation_rows({"a": maps, "b": 1 - maps}, gt, range(5))))
    parts = [ev.segmentation_rows({"a": maps[s], "b": 1 - maps[s]}, gt[s], list(range(5))[s])
             for s in (slice(0, 3), slice(3, 5))]
    gathered = ev.summarise_segmentation(pd.DataFrame(parts[1] + parts[0]))
    pd.testing.assert_frame_equal(whole, gathered)
    with pytest.raises(ValueError, match="duplicated"):
        ev.summarise_segmentation(pd.DataFrame(parts[0] + parts[0]))
    with pytest.raises(ValueError, match="shard is missing"):
        ev.summarise_segmentation(pd.DataFrame(parts[1]))


# ---------------------------------------------------------------------------------- perturbation


def test_remove_pixels_hand_computed():
    image = torch.ones(1, 3, 2, 3)
    relevance = torch.tensor([[[5.0, 1.0, 3.0], [2.0, 6.0, 4.0]]])
    pos = ev.remove_pixels(image, relevance, 0.5, positive=True)  # int(6 * 0.5) = 3: values 6, 5, 4
    assert pos[0, 0].tolist() == [[0, 1, 1], [1, 0, 0]]
    assert (pos[0, 1] == pos[0, 0]).all() and (pos[0, 2] == pos[0, 0]).all()  # every channel
    neg = ev.remove_pixels(image, relevance, 0.5, positive=False)  # values 1, 2, 3
    assert neg[0, 0].tolist() == [[1, 0, 0], [0, 1, 1]]
    assert ev.remove_pixels(image, relevance, 0.3, True)[0, 0].tolist() == [[1, 1, 1], [1, 0, 1]]  # int(1.8) = 1
    assert torch.equal(ev.remove_pixels(image, relevance, 0.0, True), image)
    assert image.min() == 1  # input untouched
    assert ev.STEPS == (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    assert int(224 * 224 * ev.STEPS[3]) == 15052


def test_auc_and_summary_hand_computed():
    assert ev.auc([1.0] * 10) == pytest.approx(90.0)
    assert ev.auc(np.linspace(1.0, 0.1, 10)) == pytest.approx(100 * 0.9 * (1.0 + 0.1) / 2)
    rows = []
    for index, correct in ((0, [1] * 10), (1, [1] * 5 + [0] * 5)):
        rows.append({"index": index, "method": "m", "mode": "positive", "kind": "predicted",
                     **{f"s{j}": c for j, c in enumerate(correct)}})
    table = ev.summarise_perturbation(pd.DataFrame(rows))
    # mean accuracy 1 x5 then 0.5 x5: 4 x 0.1 + 0.1 x 0.75 + 4 x 0.05 = 0.675
    assert table.iloc[0].AUC == pytest.approx(67.5)
    assert table.iloc[0]["acc_0.4"] == 100 and table.iloc[0]["acc_0.5"] == 50


def _toy(n, seed):
    """32 x 32 grey noise with one 8 x 8 square whose colour (red, green, blue) is the class."""
    g = torch.Generator().manual_seed(seed)
    x = 0.35 + 0.3 * torch.rand(n, 3, 32, 32, generator=g)
    y = torch.arange(n) % 3
    pos = torch.randint(0, 25, (n, 2), generator=g)
    for i in range(n):
        colour = torch.full((3,), 0.1)
        colour[y[i]] = 0.95
        r, c = pos[i].tolist()
        x[i, :, r:r + 8, c:c + 8] = colour[:, None, None]
    return x, y


@pytest.fixture(scope="module")
def toy_model():
    torch.manual_seed(0)
    model = create_model("vit_synth_tiny", num_classes=3, img_size=32, embed_dim=32, depth=2, num_heads=2)
    train_x, train_y = _toy(384, 0)
    val_x, val_y = _toy(48, 1)
    history = ev.train_single_label(model, train_x, train_y, val_x, val_y,
                                    ev.TrainSettings(epochs=12, batch_size=32, lr=3e-3, seed=0, optimizer="adamw", weight_decay=0.05))
    return model, val_x, val_y, history


def test_toy_model_learns(toy_model):
    _, val_x, val_y, history = toy_model
    assert history[-1]["val_acc"] >= 90, history[-1]


def test_positive_removal_hurts_more_than_random_and_negative(toy_model):
    """Fails if positive and negative were swapped: transformer attribution's positive AUC is
    below its negative AUC, and the random map's two AUCs lie between them."""
    model, x, y, _ = toy_model
    rows = ev.perturbation_rows(model, x, y, list(range(len(y))), ["transformer_attribution", ev.RANDOM],
                                forward_batch=256)
    table = ev.summarise_perturbation(pd.DataFrame(rows)).set_index(["method", "mode", "kind"])
    for kind in ("predicted", "target"):
        ta_pos = table.loc[("transformer_attribution", "positive", kind), "AUC"]
        ta_neg = table.loc[("transformer_attribution", "negative", kind), "AUC"]
        for mode in ("positive", "negative"):
            rnd = table.loc[(ev.RANDOM, mode, kind), "AUC"]
            assert ta_pos < rnd < ta_neg, (kind, mode, ta_pos, rnd, ta_neg)
    assert (table["n_images"] == len(y)).all()
    assert (table["acc_0.0"] == table["acc_0.0"].iloc[0]).all()  # step 0 removes nothing


def test_target_rows_differ_from_predicted_only_where_the_prediction_is_wrong(toy_model):
    model, x, y, _ = toy_model
    y = y.clone()
    y[:4] = (y[:4] + 1) % 3  # four wrong labels: their target maps explain another class
    rows = pd.DataFrame(ev.perturbation_rows(model, x[:8], y[:8], list(range(8)), ["attn_gradcam"]))
    cols = [f"s{j}" for j in range(10)]
    pred = rows[rows.kind == "predicted"].set_index(["index", "mode"])[cols]
    targ = rows[rows.kind == "target"].set_index(["index", "mode"])[cols]
    right = [i for i in range(8) if int(rows[rows["index"] == i].predicted.iloc[0]) == int(y[i])]
    assert (pred.loc[right] == targ.loc[right]).all().all()
    assert (pred.s0 == targ.s0).all()


def test_explanation_maps_are_normalised_at_input_resolution(toy_model):
    model, x, y, _ = toy_model
    methods = list(ev.DEFAULT_METHODS) + [ev.RANDOM]
    maps = ev.explanation_maps(model, x[:3], y[:3], methods, indices=[7, 8, 9])
    for m in methods:
        assert maps[m].shape == (3, 32, 32), m
        assert maps[m].min() >= 0 and maps[m].max() <= 1, m
    again = ev.explanation_maps(model, x[1:2], y[1:2], [ev.RANDOM], indices=[8])[ev.RANDOM]
    assert torch.equal(again[0], maps[ev.RANDOM][1])  # random map depends on the index, not the batch
    with pytest.raises(ValueError, match="unknown explanation methods"):
        ev.check_methods(["transformer_attribution", "gradcam++"])


def test_training_resumes_to_the_same_weights(tmp_path):
    x, y = _toy(64, 2)
    settings = ev.TrainSettings(epochs=2, batch_size=16, lr=1e-3, seed=3, optimizer="adamw", weight_decay=0.05)

    def fresh():
        torch.manual_seed(0)
        return create_model("vit_synth_tiny", num_classes=3, img_size=32, embed_dim=16, depth=1, num_heads=2)

    straight = fresh()
    ev.train_single_label(straight, x, y, x, y, settings)
    # stop after epoch 1, then resume the same run from its checkpoint in a fresh process state
    path = tmp_path / "resume.pt"
    _train_one_epoch_then_stop(fresh(), x, y, settings, path)
    finished = fresh()
    torch.manual_seed(123)  # the resumed run restores the RNG state itself
    history = ev.train_single_label(finished, x, y, x, y, settings, resume_path=path)
    assert [h["epoch"] for h in history] == [1, 2]
    for a, b in zip(straight.state_dict().values(), finished.state_dict().values()):
        assert torch.equal(a, b)


def _train_one_epoch_then_stop(model, x, y, settings, path):
    class Stop(Exception):
        pass

    from vitaff.explain_eval import training  # where train_single_label looks accuracy up

    original = training.accuracy
    calls = []

    def stop_after_first_epoch(*args, **kwargs):
        calls.append(1)
        if len(calls) > 2:  # train + val accuracy of epoch 1 done; its checkpoint is written next
            raise Stop
        return original(*args, **kwargs)

    training.accuracy = stop_after_first_epoch
    try:
        with pytest.raises(Stop):
            ev.train_single_label(model, x, y, x, y, settings, resume_path=path)
    finally:
        training.accuracy = original
    assert path.is_file()


# ---------------------------------------------------------------------------------- sharding, config


def test_shard_indices_cover_the_limit_exactly():
    shards = [ev.shard_indices(10, 7, s, 3) for s in range(3)]
    assert shards == [[0, 1, 2], [3, 4, 5], [6]]
    assert [i for s in range(8) for i in ev.shard_indices(5, None, s, 8)] == list(range(5))
    with pytest.raises(ValueError):
        ev.shard_indices(5, None, 3, 3)


def test_explain_config_defaults_and_unknown_keys(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("explain: {limit: 3}\n")
    explain = load_config(cfg)["explain"]
    assert explain["limit"] == 3 and explain["img_size"] == 224 and ev.is_embedded(explain)
    assert explain["methods"] == list(ev.DEFAULT_METHODS)
    assert explain["embedded"]["optimizer"] == "adamw"
    cfg.write_text("explain: {typo: 1}\n")
    with pytest.raises(ConfigError, match="explain"):
        load_config(cfg)
    cfg.write_text("explain: {methods: [gradcam]}\n")
    with pytest.raises(ConfigError, match="explain.methods"):
        load_config(cfg)
    cfg.write_text("explain: {gtsegs: /data/gtsegs_ijcv.mat}\n")
    explain = load_config(cfg)["explain"]
    assert not ev.is_embedded(explain)
    with pytest.raises(ValueError, match="imagenet_val"):
        ev.perturbation_data(explain)
