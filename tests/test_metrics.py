"""mIoU: hand-computed cases and an independent per-class set computation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

from vitaff.metrics import ConfusionAccumulator, confusion_matrix, iou_per_class, mean_iou, pixel_accuracy


def test_hand_computed_case():
    gt = np.array([[0, 0, 1, 1], [0, 255, 1, 2]])
    pred = np.array([[0, 1, 1, 1], [255, 0, 2, 2]])
    cm = confusion_matrix(gt, pred, num_classes=3)
    # gt 0 at 3 valid pixels: pred 0, 1, 255->0 ; gt 1: 1, 1, 2 ; gt 2: 2 ; (gt 255 ignored)
    np.testing.assert_array_equal(cm, [[2, 1, 0], [0, 2, 1], [0, 0, 1]])
    iou = iou_per_class(cm)
    np.testing.assert_allclose(iou, [2 / 3, 2 / 4, 1 / 2])
    assert mean_iou(cm) == pytest.approx((2 / 3 + 0.5 + 0.5) / 3)
    assert pixel_accuracy(cm) == pytest.approx(5 / 7)


def test_absent_class_is_nan_and_skipped():
    cm = confusion_matrix(np.array([0, 1]), np.array([0, 1]), num_classes=21)
    iou = iou_per_class(cm)
    assert np.isnan(iou[2:]).all()
    assert mean_iou(cm) == 1.0


def test_shards_add_up_exactly():
    rng = np.random.default_rng(1)
    gts = [rng.integers(0, 4, (5, 7)) for _ in range(6)]
    preds = [rng.integers(0, 4, (5, 7)) for _ in range(6)]
    whole = ConfusionAccumulator(4)
    for g, p in zip(gts, preds):
        whole.update(g, p)
    a, b = ConfusionAccumulator(4), ConfusionAccumulator(4)
    for g, p in zip(gts[:2], preds[:2]):
        a.update(g, p)
    for g, p in zip(gts[2:], preds[2:]):
        b.update(g, p)
    np.testing.assert_array_equal((a + b).matrix, whole.matrix)
    assert (a + b).miou() == whole.miou()


def test_rejects_out_of_range_and_shape_mismatch():
    with pytest.raises(ValueError, match="shape"):
        confusion_matrix(np.zeros((2, 2)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="prediction values"):
        confusion_matrix(np.zeros(3), np.array([0, 1, 30]), num_classes=21)


@settings(max_examples=60, deadline=None)
@given(arrays(np.uint8, (6, 5), elements=st.sampled_from([0, 1, 2, 3, 255])),
       arrays(np.uint8, (6, 5), elements=st.sampled_from([0, 1, 2, 3, 255])))
def test_iou_equals_set_definition(gt, pred):
    """IoU_c = |{gt=c} & {pred=c}| / |{gt=c} | {pred=c}| over non-void pixels, pred 255 as background."""
    valid = gt != 255
    p = np.where(pred == 255, 0, pred)
    iou = iou_per_class(confusion_matrix(gt, pred, num_classes=4))
    for c in range(4):
        inter = np.sum((gt == c) & (p == c) & valid)
        union = np.sum(((gt == c) | (p == c)) & valid)
        if union == 0:
            assert np.isnan(iou[c])
        else:
            assert iou[c] == pytest.approx(inter / union)


def test_average_precision_hand_case():
    from vitaff.metrics import average_precision
    # ranks: 0.9(+) 0.8(-) 0.7(+) 0.1(-): AP = 0.5*1 + 0.5*(2/3)
    assert average_precision([0.9, 0.8, 0.7, 0.1], [1, 0, 1, 0]) == pytest.approx(0.5 + 1 / 3)
    # ties are one threshold: both at 0.5, one positive -> precision 1/2 at recall 1
    assert average_precision([0.5, 0.5], [1, 0]) == pytest.approx(0.5)
    assert np.isnan(average_precision([0.1, 0.2], [0, 0]))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.booleans()), min_size=1, max_size=30))
def test_average_precision_equals_threshold_sum(pairs):
    """Independent computation: loop over every distinct threshold from high to low."""
    from vitaff.metrics import average_precision
    s = np.array([p[0] for p in pairs], float)
    t = np.array([p[1] for p in pairs])
    if t.sum() == 0:
        return
    ap, prev_recall = 0.0, 0.0
    for thr in sorted(set(s), reverse=True):
        sel = s >= thr
        tp = np.sum(t & sel)
        recall = tp / t.sum()
        ap += (recall - prev_recall) * tp / sel.sum()
        prev_recall = recall
    assert average_precision(s, t) == pytest.approx(ap)


def test_mean_average_precision_by_hand():
    """AP per class over images by hand; a class with no positive image is left out of the mean."""
    from vitaff.metrics import mean_average_precision

    scores = np.array([[0.9, 0.1, 0.5], [0.8, 0.7, 0.2], [0.3, 0.6, 0.4], [0.1, 0.2, 0.9]])
    targets = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 0]])
    # class 0: ranks 0.9 (+), 0.8 (-), 0.3 (+): AP = 1/2 * 1 + 1/2 * 2/3; class 1: 0.7 (+), 0.6 (+): AP 1
    ap0 = 0.5 * 1 + 0.5 * 2 / 3
    assert mean_average_precision(scores, targets) == pytest.approx((ap0 + 1.0) / 2)
    assert np.isnan(mean_average_precision(scores, np.zeros_like(targets)))


def test_predict_scores_in_eval_mode_in_dataset_order():
    import torch
    from torch.utils.data import TensorDataset

    from vitaff.classifier import predict_scores

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Dropout(0.5), torch.nn.Linear(8, 3)).train()
    x, y = torch.randn(5, 4), (torch.rand(5, 3) > 0.5).float()
    scores, targets = predict_scores(model, TensorDataset(x, y), batch_size=2, device="cpu")
    assert not model.training  # dropout off: the scores are the model's, not a random draw
    with torch.no_grad():
        np.testing.assert_allclose(scores, model(x).numpy(), rtol=1e-6)
    np.testing.assert_array_equal(targets, y.numpy())
    assert scores.shape == (5, 3) and isinstance(scores, np.ndarray)


def test_accumulator_uses_its_own_ignore_index():
    """An accumulator made with another ignore value ignores that value (and only that one)."""
    gt = np.array([[0, 1, 9], [255 % 3, 1, 9]])
    pred = np.array([[0, 1, 2], [1, 1, 0]])
    acc = ConfusionAccumulator(num_classes=3, ignore_index=9).update(gt, pred)
    np.testing.assert_array_equal(acc.matrix, confusion_matrix(gt, pred, num_classes=3, ignore_index=9))
    assert acc.matrix.sum() == 4
    assert (acc + acc).update(gt, pred).matrix.sum() == 12  # the sum keeps ignoring 9


def test_accumulator_defaults_sums_and_empty_scores():
    """VOC defaults (21 classes, 255 ignored, exact integer counts); a sum of accumulators keeps
    both and goes on accumulating; nothing scored gives NaN, quietly (no all-NaN warning)."""
    import warnings

    gt = np.array([[0, 255, 20], [3, 3, 255]])
    pred = np.array([[0, 5, 20], [3, 255, 7]])
    a = ConfusionAccumulator().update(gt, pred)
    assert a.matrix.shape == (21, 21) and a.matrix.dtype == np.int64 and a.matrix.sum() == 4
    b = ConfusionAccumulator(num_classes=21).update(gt[:1], pred[:1])
    total = (a + b).update(gt, pred)
    assert (total.num_classes, total.ignore_index) == (21, 255)
    np.testing.assert_array_equal(total.matrix, 2 * a.matrix + b.matrix)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(mean_iou(np.zeros((3, 3), np.int64)))
        assert np.isnan(pixel_accuracy(np.zeros((3, 3), np.int64)))
        assert np.isnan(ConfusionAccumulator(num_classes=2).miou())
        from vitaff.metrics import mean_average_precision

        assert np.isnan(mean_average_precision(np.ones((2, 2)), np.zeros((2, 2))))


def test_average_precision_reads_any_shape_and_unsigned_scores():
    """Scores as a column or as uint8 (no wraparound when ranking) give the same AP."""
    from vitaff.metrics import average_precision

    scores = np.array([200, 0, 120, 30, 250], np.uint8)  # -0 == 0 in uint8: negating would rank 0 first
    targets = np.array([1, 0, 0, 1, 1])
    # ranking 250 (+), 200 (+), 120 (-), 30 (+), 0 (-): AP = (1 + 1 + 3/4) / 3
    want = (1 + 1 + 0.75) / 3
    assert average_precision(scores, targets) == pytest.approx(want)
    assert average_precision(scores[:, None], targets[:, None]) == pytest.approx(want)


def test_confusion_matrix_rejects_values_outside_the_classes():
    """VOC's 21 classes by default; exactly num_classes, or a negative value, is out of range
    (255 is ignored in ground truth and background in a prediction)."""
    assert confusion_matrix(np.array([20, 255]), np.array([255, 20])).shape == (21, 21)
    ok = np.array([0, 1, 2])
    with pytest.raises(ValueError, match=r"ground truth values outside 0\.\.2 \(and 255\)"):
        confusion_matrix(np.array([0, 1, 3]), ok, num_classes=3)
    with pytest.raises(ValueError, match="ground truth values outside"):
        confusion_matrix(np.array([-1, 1, 2]), ok, num_classes=3)
    with pytest.raises(ValueError, match=r"prediction values outside 0\.\.2 \(and 255\)"):
        confusion_matrix(ok, np.array([0, 3, 1]), num_classes=3)
