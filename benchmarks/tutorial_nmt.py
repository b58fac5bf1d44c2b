"""The TensorFlow tutorial "Neural machine translation with attention", model and training step.

A replica, for benchmarks only (never imported by the library), of the model that
https://www.tensorflow.org/text/tutorials/nmt_with_attention trains (tensorflow/text,
docs/tutorials/nmt_with_attention.ipynb), as published:

- `Encoder`: `Embedding(vocab, units, mask_zero=True)` then
  `Bidirectional(GRU(units, return_sequences=True, recurrent_initializer="glorot_uniform"),
  merge_mode="sum")`;
- `CrossAttention`: `MultiHeadAttention(key_dim=units, num_heads=1)` with the decoder's GRU
  outputs as query and the encoder's outputs as value (and key), then `Add` and
  `LayerNormalization`; like the tutorial it averages the attention scores over heads and
  keeps them on `self.last_attention_weights` at every call;
- `Decoder`: `Embedding(vocab, units, mask_zero=True)`, `GRU(units, return_sequences=True,
  return_state=True, recurrent_initializer="glorot_uniform")` from a zero state (the
  tutorial does not pass the encoder's state on), cross attention, `Dense(vocab)`;
- `Translator(keras.Model)`: encoder then decoder, deleting the logits' Keras mask so that
  Keras does not rescale the loss (the tutorial's `TODO(b/250038731)`);
- `masked_loss` (sparse cross-entropy from logits, summed over non-padding tokens and divided
  by their count) and `masked_acc`, compiled as the tutorial does:
  `compile(optimizer="adam", loss=masked_loss, metrics=[masked_acc, masked_loss])`
  (Adam at Keras' default rate 0.001, no clipping) and trained with `model.fit`;
- `tutorial_batches`: the tutorial's input pipeline: shuffled pairs, `batch(64)`, each batch
  padded to its own longest sentence (no length bucketing), `target_in = target[:, :-1]`,
  `target_out = target[:, 1:]`.

What differs from the tutorial, and why:

- Tokenization: the tutorial's `TextVectorization` (lower-cased words, punctuation split
  off, `max_tokens=5000`, [START]/[END] added) is replaced by the very ids the compared
  `seq2seq_attn` model trains on (SentencePiece, 5000 pieces per side, 0 = padding,
  [START] = 2, [END] = 3), so that both see the same sentences as the same ids; the
  vocabulary size comes from the tokenizer. Tokenizing is not part of either timed step.
- The tutorial's `ShapeChecker` calls are left out: they only check shapes when running
  eagerly and do nothing inside `model.fit`'s compiled step.
- Written against Keras 3 (`keras.layers` rather than `tf.keras.layers`, which is the
  same Keras 3 in TensorFlow 2.16 and later).
- `Export` is the tutorial's exported greedy `translate` in its dynamic-loop version (its
  section "Optional: Use a dynamic loop": `tf.range` loop, `TensorArray`s of tokens and
  attention, stopping once every row is done; temperature 0), on ids in and ids out for the
  tokenization reason above.
"""

import keras
import numpy as np
import tensorflow as tf

UNITS = 256
BATCH_SIZE = 64


class Encoder(keras.layers.Layer):
    """Embedding + bidirectional GRU, outputs summed: `(batch, s)` ids -> `(batch, s, units)`."""

    def __init__(self, vocab_size, units, **kwargs):
        super().__init__(**kwargs)
        self.embedding = keras.layers.Embedding(vocab_size, units, mask_zero=True)
        self.rnn = keras.layers.Bidirectional(
            merge_mode="sum",
            layer=keras.layers.GRU(
                units, return_sequences=True, recurrent_initializer="glorot_uniform"
            ),
        )

    def call(self, x):
        x = self.embedding(x)  # (batch, s, units)
        return self.rnn(x)  # (batch, s, units)


class CrossAttention(keras.layers.Layer):
    """One-head dot-product attention of the decoder outputs over the encoder outputs."""

    def __init__(self, units, **kwargs):
        super().__init__()
        self.mha = keras.layers.MultiHeadAttention(key_dim=units, num_heads=1, **kwargs)
        self.layernorm = keras.layers.LayerNormalization()
        self.add = keras.layers.Add()

    def call(self, x, context):
        attn_output, attn_scores = self.mha(
            query=x, value=context, return_attention_scores=True
        )  # (batch, t, units), (batch, heads, t, s)
        # As published: cached for plotting (per-call state; harmless in training).
        self.last_attention_weights = tf.reduce_mean(attn_scores, axis=1)  # (batch, t, s)
        x = self.add([x, attn_output])
        return self.layernorm(x)


class Decoder(keras.layers.Layer):
    """Embedding, GRU from a zero state, cross attention, logits over the target vocabulary."""

    def __init__(self, vocab_size, units, **kwargs):
        super().__init__(**kwargs)
        self.embedding = keras.layers.Embedding(vocab_size, units, mask_zero=True)
        self.rnn = keras.layers.GRU(
            units,
            return_sequences=True,
            return_state=True,
            recurrent_initializer="glorot_uniform",
        )
        self.attention = CrossAttention(units)
        self.output_layer = keras.layers.Dense(vocab_size)

    def call(self, context, x, state=None, return_state=False):
        x = self.embedding(x)  # (batch, t, units)
        x, state = self.rnn(x, initial_state=state)  # (batch, t, units), (batch, units)
        x = self.attention(x, context)
        self.last_attention_weights = self.attention.last_attention_weights
        logits = self.output_layer(x)  # (batch, t, vocab)
        if return_state:
            return logits, state
        return logits


class Translator(keras.Model):
    """The tutorial's training model: `(context_ids, target_in_ids)` -> logits."""

    def __init__(self, units, source_vocab_size, target_vocab_size):
        super().__init__()
        self.encoder = Encoder(source_vocab_size, units)
        self.decoder = Decoder(target_vocab_size, units)

    def call(self, inputs):
        context, x = inputs
        context = self.encoder(context)
        logits = self.decoder(context, x)
        try:
            # As published: delete the Keras mask so Keras doesn't scale the loss+accuracy.
            del logits._keras_mask
        except AttributeError:
            pass
        return logits


def masked_loss(y_true, y_pred):
    """Mean token cross-entropy over the non-padding targets (the tutorial's)."""
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="none")
    loss = loss_fn(y_true, y_pred)  # (batch, t)
    mask = tf.cast(y_true != 0, loss.dtype)
    loss *= mask
    return tf.reduce_sum(loss) / tf.reduce_sum(mask)


def masked_acc(y_true, y_pred):
    """Arg-max accuracy over the non-padding targets (the tutorial's)."""
    y_pred = tf.argmax(y_pred, axis=-1)
    y_pred = tf.cast(y_pred, y_true.dtype)
    match = tf.cast(y_true == y_pred, tf.float32)
    mask = tf.cast(y_true != 0, tf.float32)
    return tf.reduce_sum(match) / tf.reduce_sum(mask)


def build_translator(source_vocab_size, target_vocab_size, units=UNITS):
    """A `Translator` compiled as the tutorial compiles it."""
    model = Translator(units, source_vocab_size, target_vocab_size)
    model.compile(optimizer="adam", loss=masked_loss, metrics=[masked_acc, masked_loss])
    return model


def tutorial_batches(pairs, count, batch_size=BATCH_SIZE, seed=0):
    """The tutorial's batches: shuffled pairs, `batch_size` at a time, padded to the longest.

    Args:
        pairs: list of `(source_ids, target_ids)` int sequences, each `[START] ... [END]`.
        count: number of full batches to return.
        batch_size: sentences per batch.
        seed: shuffling seed.

    Returns:
        A list of `((context, target_in), target_out)` int32 arrays,
        `(batch_size, longest source)` and `(batch_size, longest target - 1)`.
    """
    order = np.random.default_rng(seed).permutation(len(pairs))
    batches = []
    for start in range(0, len(order) - batch_size + 1, batch_size):
        if len(batches) == count:
            break
        rows = [pairs[i] for i in order[start : start + batch_size]]
        context = _pad([s for s, _ in rows])
        target = [list(t) for _, t in rows]
        target_in = _pad([t[:-1] for t in target])
        target_out = _pad([t[1:] for t in target])
        batches.append(((context, target_in), target_out))
    return batches


def _pad(rows):
    out = np.zeros((len(rows), max(len(r) for r in rows)), "int32")
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


class Export(tf.Module):
    """The tutorial's exported greedy decoder: `translate_ids(source_ids)` -> `tokens`.

    Args:
        model: a `Translator`.
        start_id, end_id: the target's [START] and [END] ids.
        max_length: the loop's bound (the tutorial's dynamic version uses 500).
    """

    def __init__(self, model, start_id, end_id, max_length=500):
        super().__init__()
        self.model = model
        self.start_id, self.end_id, self.max_length = start_id, end_id, max_length

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32, name="source_ids")])
    def translate_ids(self, source_ids):
        decoder = self.model.decoder
        context = self.model.encoder(source_ids)  # (batch, s, units)
        batch = tf.shape(source_ids)[0]
        next_token = tf.fill([batch, 1], tf.constant(self.start_id, tf.int64))
        done = tf.zeros([batch, 1], tf.bool)
        state = tf.zeros([batch, decoder.rnn.units])  # the GRU's initial state
        tokens = tf.TensorArray(tf.int64, size=1, dynamic_size=True)
        attention = tf.TensorArray(tf.float32, size=1, dynamic_size=True)
        for t in tf.range(self.max_length):
            logits, state = decoder(context, next_token, state=state, return_state=True)
            next_token = tf.argmax(logits, axis=-1)  # (batch, 1)
            done = done | (next_token == self.end_id)
            next_token = tf.where(done, tf.constant(0, tf.int64), next_token)
            tokens = tokens.write(t, next_token)
            attention = attention.write(t, decoder.last_attention_weights)
            if tf.reduce_all(done):
                break
        tokens = tf.transpose(tf.squeeze(tokens.stack(), -1))  # (batch, t)
        weights = tf.transpose(tf.squeeze(attention.stack(), 2), [1, 0, 2])  # (batch, t, s)
        return {"tokens": tokens, "attention": weights}
