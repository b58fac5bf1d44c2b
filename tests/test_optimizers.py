"""FusedAdam against Keras' Adam: the same weights, one fused op per dense variable."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from seq2seq_attn.optimizers import FusedAdam


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
