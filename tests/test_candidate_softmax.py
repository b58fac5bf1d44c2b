"""The training softmax over each batch's candidates (`training.candidate_softmax`, sampled
softmax by target partition, Jean et al. 2015): the candidates' logits are the full row's
columns, over the whole vocabulary the loss and its gradient are the full softmax's, the
pipeline's renumbering round-trips, and a run trained so is not worse than a full one."""

import copy
import csv

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import TINY_CONFIG

from seq2seq_attn.config import resolve_config
from seq2seq_attn.data import candidate_targets, most_frequent_targets
from seq2seq_attn.errors import UserError
from seq2seq_attn.losses import MaskedCrossEntropy
from seq2seq_attn.training import (
    _datasets,
    candidate_softmax,
    corpus_for,
    run_tokenizers,
    train,
)
from tests import random_models
from tests.random_models import MODELS, SOURCE, VOCAB

TARGET = np.array([[2, 9, 17, 33, 3], [2, 5, 5, 3, 0], [2, 38, 3, 0, 0]], np.int32)


def random_model(seed, **kwargs):
    return random_models.random_model(seed, 2.0, **kwargs)


def _split(target):
    """`(target_in, target_out)` as the pipeline makes them."""
    target_in = np.where(target[:, :-1] == 3, 0, target[:, :-1])
    return target_in, target[:, 1:]


@pytest.mark.parametrize("name", list(MODELS))
def test_candidate_logits_are_the_full_rows_columns(name):
    model = random_model(0, **MODELS[name])
    target_in, _ = _split(TARGET)
    full = model((SOURCE, target_in)).numpy()  # (3, 4, VOCAB)
    candidates = np.array([0, 3, 38, 9, 17, 5, 33, 21], np.int32)
    part = model((SOURCE, target_in, candidates)).numpy()
    assert part.shape == (3, 4, len(candidates))
    np.testing.assert_allclose(part, full[..., candidates], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["untied", "tied_projected"])
def test_over_every_id_the_loss_and_gradient_are_the_full_softmaxs(name):
    model = random_model(1, **MODELS[name])
    target_in, target_out = _split(TARGET)
    order = np.random.default_rng(0).permutation(np.arange(1, VOCAB))  # every id, shuffled
    (_, _, ids), positions = candidate_targets(order)((SOURCE, target_in), target_out)
    assert sorted(ids.numpy().tolist()) == list(range(VOCAB))
    loss = MaskedCrossEntropy(label_smoothing=0.1)  # eps / C is eps / vocab here

    def loss_and_grads(inputs, y):
        with tf.GradientTape() as tape:
            value = loss(y, model(inputs, training=False))
        grads = tape.gradient(value, model.trainable_variables)
        return value.numpy(), [tf.convert_to_tensor(g).numpy() for g in grads]

    full, full_grads = loss_and_grads((SOURCE, target_in), target_out)
    part, part_grads = loss_and_grads((SOURCE, target_in, ids), positions)
    assert part == pytest.approx(full, rel=1e-6)
    for a, b in zip(part_grads, full_grads, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_only_the_candidates_output_columns_get_a_gradient():
    model = random_model(2)
    target_in, target_out = _split(TARGET)
    (_, _, ids), positions = candidate_targets([1, 4])((SOURCE, target_in), target_out)
    kernel = model.decoder_cell.output_layer.kernel
    with tf.GradientTape() as tape:
        value = MaskedCrossEntropy()(positions, model((SOURCE, target_in, ids), training=True))
    grad = tf.convert_to_tensor(tape.gradient(value, kernel)).numpy()  # (features, VOCAB)
    touched = np.flatnonzero(np.abs(grad).sum(axis=0))
    # Padding's column is in the softmax too (it is candidate 0), so it is pushed down.
    assert set(touched) == set(ids.numpy().tolist()) == {0, 1, 4, 3, 9, 17, 33, 5, 38}


def test_the_pipelines_renumbering_round_trips():
    rng = np.random.default_rng(3)
    always = np.array([7, 2, 11])
    remap = candidate_targets(always)
    for _ in range(20):
        lengths = rng.integers(1, 9, size=6)
        out = np.zeros((6, 9), np.int32)
        for row, n in enumerate(lengths):
            out[row, :n] = rng.integers(1, 300, size=n)
        (src, tin, ids), positions = remap((SOURCE, "unchanged"), out)
        ids, positions = ids.numpy(), positions.numpy()
        assert src is SOURCE and tin == "unchanged"
        assert ids[0] == 0 and len(set(ids)) == len(ids)
        assert set(ids) == {0, *always, *out.ravel()}
        np.testing.assert_array_equal(ids[positions], out)  # each target is its candidate
        np.testing.assert_array_equal(positions == 0, out == 0)  # padding stays 0
        assert positions.dtype == out.dtype


def test_the_switch_gives_a_batch_the_whole_vocabulary_and_its_own_targets():
    full = tf.Variable(False)
    remap = candidate_targets([7], full=full, vocab_size=VOCAB)
    target_in, target_out = _split(TARGET)
    (_, _, ids), positions = remap((SOURCE, target_in), target_out)
    assert ids.numpy().tolist() == [0, 7, 9, 17, 33, 3, 5, 38]
    full.assign(True)
    (_, _, ids), positions = remap((SOURCE, target_in), target_out)
    np.testing.assert_array_equal(ids, np.arange(VOCAB))
    np.testing.assert_array_equal(positions, target_out)
    with pytest.raises(ValueError, match="vocab_size"):
        candidate_targets(full=full)


def test_most_frequent_targets_by_hand():
    targets = [[2, 5, 5, 9, 3], [2, 9, 5, 3], [2, 7, 3]]
    pairs = tf.data.Dataset.from_generator(
        lambda: ((np.array([4], np.int32), np.array(t, np.int32)) for t in targets),
        output_signature=(tf.TensorSpec([None], tf.int32), tf.TensorSpec([None], tf.int32)),
    )
    # counts: 2 x3, 3 x3, 5 x3, 9 x2, 7 x1; ties go to the lower id
    assert most_frequent_targets(pairs, 12, 3).tolist() == [2, 3, 5]
    assert most_frequent_targets(pairs, 12, 4).tolist() == [2, 3, 5, 9]
    assert most_frequent_targets(pairs, 12, 100).tolist() == [2, 3, 5, 7, 9]  # seen ids only
    assert most_frequent_targets(pairs, 12, 0).tolist() == []


def _config(**training):
    raw = copy.deepcopy(TINY_CONFIG)
    raw["training"].update(training)
    return resolve_config(raw)


@pytest.mark.parametrize(
    "training, match",
    [
        ({"candidate_softmax": -1}, r"\(an integer >= 0\), got -1"),
        ({"candidate_softmax": 2.5}, r"\(an integer >= 0\), got 2.5"),
        ({"candidate_softmax": "all"}, r"\(an integer >= 0\), got 'all'"),
        ({"candidate_softmax": 10, "strategy": "mirrored"}, "strategy: null only"),
        ({"candidate_softmax": 10, "jit_compile": True}, "jit_compile: false only"),
        ({"full_softmax_cooldown": "yes"}, "must be true or false, got 'yes'"),
    ],
)
def test_bad_candidate_softmax_settings_are_user_errors(training, match):
    with pytest.raises(UserError, match=match):
        _config(**training)


@pytest.mark.parametrize(
    "training, frequent",
    [
        ({"max_minutes": 3}, 0),  # `train --max-minutes 3`
        ({"max_steps": 500}, 0),
        ({"max_minutes": 3, "candidate_softmax": 200}, 200),
        ({"max_minutes": 3, "candidate_softmax": None}, None),
        ({}, None),  # no budget, no cool-down: the full softmax to the end
        ({"max_minutes": 3, "cooldown": 0}, None),
        ({"max_minutes": 3, "full_softmax_cooldown": False}, None),
        ({"max_minutes": 3, "schedule": "plateau"}, None),
        ({"max_steps": 500, "strategy": "mirrored"}, None),  # auto gives way, no error
        ({"max_minutes": 3, "jit_compile": True}, None),
    ],
)
def test_auto_is_the_candidate_softmax_where_a_cool_down_trains_the_full_one(training, frequent):
    config = resolve_config({"training": training})  # the defaults: candidate_softmax auto
    assert candidate_softmax(config["training"]) == frequent


SHORT_RUN = dict(epochs=100, max_steps=300, learning_rate=0.01, dev_sample=1)
# Full softmax against each batch's own target pieces (candidate_softmax 0, batches of 8: 17 of
# the 30 pieces a batch on average, 7 to 21), dev loss over the whole vocabulary after 300
# updates, seed 0: 0.645 and 0.598. A renumbering that mixed up the targets leaves the dev
# loss far above; the margin is the noise between seeds of a full run (0.307 and 0.365 in the
# EMA test of tests/test_training.py).
MARGIN = 1.2


def test_the_training_pipeline_gives_each_batch_its_own_candidates(tmp_path):
    config = _config(candidate_softmax=2, batch_size=8)
    corpus = corpus_for("dates", 0, config)
    tokenizers = run_tokenizers(tmp_path, corpus, config["tokenizer"])
    train_ds, dev_ds = _datasets(corpus, tokenizers, config["training"], 0, count=False)
    common = None
    for (source, target_in, ids), positions in train_ds.take(20):
        ids, positions = ids.numpy(), positions.numpy()
        assert ids[0] == 0 and len(ids) < tokenizers.target.vocab_size
        assert source.shape[0] == target_in.shape[0] == positions.shape[0]
        common = set(ids) if common is None else common & set(ids)
    assert len(common - {0}) >= 2  # the two most frequent pieces are in every batch
    (inputs, _), *_ = dev_ds.take(1)
    assert len(inputs) == 2  # dev loss over the whole vocabulary


def test_a_run_over_each_batchs_candidates_trains_as_well_as_a_full_one(tmp_path):
    losses = {}
    for frequent in (None, 0):
        config = _config(
            candidate_softmax=frequent, batch_size=8, early_stopping_patience=100, **SHORT_RUN
        )
        out = tmp_path / f"cs-{frequent}"
        info = train("dates", config, out, seed=0, verbose=0)
        assert info["steps"] == 300
        with open(out / "history.csv", newline="") as rows:
            losses[frequent] = float(list(csv.DictReader(rows))[-1]["val_loss"])
    assert losses[0] <= MARGIN * losses[None], losses


class Kernels(keras.callbacks.Callback):
    """Keeps the output kernel as training begins and as it ends."""

    def on_train_begin(self, logs=None):
        self.first = self.model.decoder_cell.output_layer.kernel.numpy()

    def on_train_end(self, logs=None):
        self.last = self.model.decoder_cell.output_layer.kernel.numpy()


@pytest.mark.parametrize("frequent, full", [(0, False), (0, True), ("auto", True)])
def test_the_cool_down_pushes_down_the_pieces_no_batch_held(tmp_path, frequent, full):
    """The start piece (2) is never a target (`target_out` begins after it), so no batch's
    candidates hold it: its output column keeps its initial weights through a candidate
    softmax run, and moves only when the cool-down trains over the whole vocabulary."""
    config = _config(
        candidate_softmax=frequent,
        full_softmax_cooldown=full,
        epochs=100,
        max_steps=40,
        cooldown=0.5,
        dev_sample=1,
    )
    kernels = Kernels()
    info = train("dates", config, tmp_path / "run", seed=0, verbose=0, callbacks=[kernels])
    assert info["steps"] == 40 and info["candidate_softmax"] == 0
    assert not np.allclose(kernels.last[:, 3], kernels.first[:, 3])  # the end piece: a target
    assert np.array_equal(kernels.last[:, 2], kernels.first[:, 2]) != full
