"""Masked loss and accuracy against hand computations."""

import numpy as np
import pytest

from seq2seq_attn.losses import MaskedAccuracy, MaskedCrossEntropy

Y_TRUE = np.array([[1, 2, 0], [3, 0, 0]], "int32")
LOGITS = np.log(
    np.array(
        [
            [[0.1, 0.6, 0.2, 0.1], [0.25, 0.25, 0.25, 0.25], [0.7, 0.1, 0.1, 0.1]],
            [[0.1, 0.1, 0.1, 0.7], [0.9, 0.05, 0.03, 0.02], [0.4, 0.3, 0.2, 0.1]],
        ]
    )
).astype("float32")


def test_masked_cross_entropy_by_hand():
    expected = -(np.log(0.6) + np.log(0.25) + np.log(0.7)) / 3  # padding excluded
    assert float(MaskedCrossEntropy()(Y_TRUE, LOGITS)) == pytest.approx(expected, abs=1e-6)


def test_label_smoothing_by_hand():
    eps = 0.1
    probs = np.exp(LOGITS)
    tokens = [(0, 0, 1), (0, 1, 2), (1, 0, 3)]
    per_token = [
        -(1 - eps) * np.log(probs[b, t, y]) - eps * np.log(probs[b, t]).mean() for b, t, y in tokens
    ]
    loss = MaskedCrossEntropy(label_smoothing=eps)(Y_TRUE, LOGITS)
    assert float(loss) == pytest.approx(np.mean(per_token), abs=1e-6)


def test_gradient_is_smoothed_softmax_minus_target():
    import tensorflow as tf

    eps = 0.1
    logits = tf.constant(LOGITS * 1.7)  # not normalised: logsumexp matters
    with tf.GradientTape() as tape:
        tape.watch(logits)
        loss = MaskedCrossEntropy(label_smoothing=eps)(Y_TRUE, logits)
    grad = tape.gradient(loss, logits).numpy()
    x = LOGITS.astype("float64") * 1.7
    softmax = np.exp(x) / np.exp(x).sum(-1, keepdims=True)
    target = np.full(x.shape, eps / x.shape[-1]) + (1 - eps) * np.eye(x.shape[-1])[Y_TRUE]
    mask = (Y_TRUE != 0)[..., None]
    expected = (softmax - target) * mask / mask.sum()
    np.testing.assert_allclose(grad, expected, atol=1e-6)


def test_padding_logits_do_not_matter():
    changed = LOGITS.copy()
    changed[0, 2] = [9.0, -9.0, 3.0, 1.0]
    changed[1, 1:] = 42.0
    assert float(MaskedCrossEntropy()(Y_TRUE, changed)) == float(
        MaskedCrossEntropy()(Y_TRUE, LOGITS)
    )


def test_masked_accuracy():
    metric = MaskedAccuracy()
    metric.update_state(Y_TRUE, LOGITS)  # argmax: [1, 0(tie->0), 0], [3, 0, 0]; real tokens 1,2,3
    assert float(metric.result()) == pytest.approx(2 / 3)
    metric.update_state(np.array([[2]]), np.array([[[0.0, 0.0, 5.0]]]))
    assert float(metric.result()) == pytest.approx(3 / 4)


def test_bad_label_smoothing():
    with pytest.raises(ValueError, match="label_smoothing=1.5"):
        MaskedCrossEntropy(label_smoothing=1.5)
