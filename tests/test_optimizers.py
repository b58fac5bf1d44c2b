"""FusedAdam against Keras' Adam: the same weights, one fused op per dense variable; the
`use_ema` average of both Adams against a NumPy twin of TensorFlow's warm-up EMA."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from seq2seq_attn import _compat
from seq2seq_attn.distribute import CrossReplicaAdam
from seq2seq_attn.optimizers import FusedAdam, warm_up_decay


def _model():
    keras.utils.set_random_seed(3)
    inputs = keras.Input((4,), dtype="int32")
    x = keras.layers.Embedding(11, 6)(inputs)  # IndexedSlices gradients: Keras' update
    x = keras.layers.GRU(5)(x)
    return keras.Model(inputs, keras.layers.Dense(3)(x))


def _train(optimizer, steps=6):
    model = _model()
    model.compile(optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    x = rng.integers(0, 11, (32, 4)).astype("int32")
    y = rng.integers(0, 3, (32,)).astype("int32")
    model.fit(x, y, batch_size=8, epochs=steps // 4 + 1, steps_per_epoch=4, verbose=0)
    return model


@pytest.mark.parametrize("kwargs", [{}, {"clipnorm": 0.05, "learning_rate": 0.03}])
def test_same_weights_as_keras_adam(kwargs):
    ours = _train(FusedAdam(**kwargs))
    keras_ = _train(keras.optimizers.Adam(**kwargs))
    assert int(ours.optimizer.iterations) == int(keras_.optimizer.iterations) == 8
    for a, b in zip(ours.get_weights(), keras_.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, atol=2e-6, rtol=1e-5)
    moments = zip(ours.optimizer.variables, keras_.optimizer.variables, strict=True)
    for a, b in moments:
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=2e-6, rtol=1e-5)


def test_dense_updates_run_one_fused_op():
    w = keras.Variable(np.ones((4, 3), "float32"))
    table = keras.Variable(np.ones((5, 2), "float32"))
    optimizer = FusedAdam(learning_rate=0.1)
    optimizer.build([w, table])

    @tf.function(autograph=False)  # as Keras' train step calls it: unconverted
    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(w.value**2) + tf.reduce_sum(tf.gather(table.value, [1, 3]))
        optimizer.apply(tape.gradient(loss, [w.value, table.value]), [w, table])

    ops = [op.type for op in step.get_concrete_function().graph.get_operations()]
    assert ops.count("ResourceApplyAdam") == 1  # w; the gathered table's slices fall back
    step()
    # first Adam step moves every element with a gradient by the learning rate
    np.testing.assert_allclose(w.numpy(), np.full((4, 3), 0.9), atol=1e-6)
    np.testing.assert_allclose(table.numpy()[[1, 3]], np.full((2, 2), 0.9), atol=1e-6)
    np.testing.assert_array_equal(table.numpy()[[0, 2, 4]], np.ones((3, 2)))


def test_config_round_trip():
    optimizer = FusedAdam(learning_rate=0.002, beta_2=0.98, clipnorm=1.0)
    again = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert type(again) is FusedAdam
    assert again.get_config() == optimizer.get_config()


def _tf_average(initial, weights_after_each_update, decay):
    """NumPy twin of `tf.train.ExponentialMovingAverage(decay, num_updates=t).apply`: the
    shadow starts at the initial weights; update t (from 0) decays by min(decay, (1+t)/(10+t))."""
    average, out = initial.astype("float64"), []
    for t, weights in enumerate(weights_after_each_update):
        d = min(decay, (1 + t) / (10 + t))
        average = d * average + (1 - d) * weights
        out.append(average)
    return out


GRADIENTS = [np.array([1.0, -2.0, 0.5], "float32") * (1 + 0.5 * k) for k in range(6)]


@pytest.mark.parametrize("adam", [FusedAdam, CrossReplicaAdam])
def test_the_average_warms_up_as_tensorflow_ema_does(adam):
    w = keras.Variable(np.array([0.3, -1.0, 2.0], "float32"))
    optimizer = adam(learning_rate=0.1, use_ema=True, ema_momentum=0.999)
    optimizer.build([w])
    initial = w.numpy().copy()
    np.testing.assert_array_equal(_compat.moving_averages(optimizer)[0].numpy(), initial)
    after, got = [], []
    for gradient in GRADIENTS:
        optimizer.apply([gradient], [w])
        after.append(w.numpy().copy())
        got.append(_compat.moving_averages(optimizer)[0].numpy().copy())
    expected = _tf_average(initial, after, 0.999)
    # The decay by hand at t = 0 is 1/10: the first average is 0.1 w_0 + 0.9 w_1.
    np.testing.assert_allclose(expected[0], 0.1 * initial + 0.9 * after[0], atol=1e-12)
    for t, (g, e) in enumerate(zip(got, expected, strict=True)):
        np.testing.assert_allclose(g, e, atol=1e-6, err_msg=f"update t={t}")
    # Keras' constant decay would have left the average at the first update's weights
    # (to 0.1%): the warm-up moved it by more than a third of the way to the last weights.
    assert np.all(np.abs(got[-1] - after[0]) > 0.3 * np.abs(after[-1] - after[0]))


def test_with_accumulation_the_average_moves_once_per_update_counting_updates():
    w = keras.Variable(np.array([0.3, -1.0, 2.0], "float32"))
    optimizer = FusedAdam(
        learning_rate=0.1, use_ema=True, ema_momentum=0.999, gradient_accumulation_steps=2
    )
    optimizer.build([w])
    initial, after, averages = w.numpy().copy(), [], []
    for gradient in GRADIENTS:  # 6 micro-batches: 3 updates
        optimizer.apply([gradient], [w])
        after.append(w.numpy().copy())
        averages.append(_compat.moving_averages(optimizer)[0].numpy().copy())
    assert int(optimizer.iterations) == 3
    np.testing.assert_array_equal(averages[0], initial)  # an accumulating batch: unchanged
    expected = _tf_average(initial, after[1::2], 0.999)  # t = 0, 1, 2 at batches 2, 4, 6
    for got, want in zip(averages[1::2], expected, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-6)
    for held, updated in zip(averages[2::2], averages[1:-1:2], strict=True):
        np.testing.assert_array_equal(held, updated)


def test_the_average_is_built_and_updated_inside_a_compiled_step():
    """Keras builds the optimizer during the first traced update: the average still starts
    at the weights once (not at every step), and the traced update warms up too."""
    w = keras.Variable(np.array([0.3, -1.0, 2.0], "float32"))
    optimizer = FusedAdam(learning_rate=0.1, use_ema=True, ema_momentum=0.999)
    initial = w.numpy().copy()

    @tf.function(autograph=False)
    def step(gradient):
        optimizer.apply([gradient], [w])

    after = []
    for gradient in GRADIENTS:
        step(tf.constant(gradient))
        after.append(w.numpy().copy())
    got = _compat.moving_averages(optimizer)[0].numpy()
    np.testing.assert_allclose(got, _tf_average(initial, after, 0.999)[-1], atol=1e-6)


def test_warm_up_decay_values():
    decays = [float(warm_up_decay(0.999, t)) for t in (0, 8, 80, 8990, 10**6)]
    np.testing.assert_allclose(decays, [0.1, 0.5, 0.9, 0.999, 0.999], rtol=1e-6)
    assert float(warm_up_decay(0.5, 0)) == pytest.approx(0.1)
    assert float(warm_up_decay(0.5, 100)) == pytest.approx(0.5)
