"""The Bahdanau model written the obvious way: the baseline of `train_throughput.py`.

This is how the architecture tends to be written from the paper or a tutorial, with stock
Keras layers: a `Bidirectional(GRU)` encoder, and a decoder that is a Python loop over target
positions in `call()`, recomputing the whole score e_ij = v^T tanh(W_q s_{i-1} + W_k h_j) at
every step (so W_k h_j, the same for all i, is projected again T times), trained with
`run_eagerly=True` (the step is not compiled: a Python loop over a tensor's length does not
trace into one graph).

It is the same function as `seq2seq_attn.Seq2SeqAttention` (Bahdanau order, GRU, one
bidirectional layer, no dropout): `copy_weights` loads a `Seq2SeqAttention`'s weights into it,
and the two then give the same logits, which is what lets the benchmark compare loss curves.
Kept out of the library on purpose.
"""

import keras
from keras import ops


class NaiveSeq2Seq(keras.Model):
    """Bahdanau encoder-decoder with per-step key projection, for benchmarking only."""

    def __init__(self, source_vocab_size, target_vocab_size, embedding_dim, units, attention_units):
        super().__init__()
        self.source_embedding = keras.layers.Embedding(source_vocab_size, embedding_dim)
        self.encoder = keras.layers.Bidirectional(
            keras.layers.GRU(units, return_sequences=True, return_state=True)
        )
        self.bridge = keras.layers.Dense(units, activation="tanh")
        self.target_embedding = keras.layers.Embedding(target_vocab_size, embedding_dim)
        self.w_query = keras.layers.Dense(attention_units)
        self.w_key = keras.layers.Dense(attention_units, use_bias=False)
        self.v = keras.layers.Dense(1, use_bias=False)
        self.cell = keras.layers.GRUCell(units)
        self.output_layer = keras.layers.Dense(target_vocab_size)

    def call(self, inputs, training=False):
        source, target_in = inputs
        mask = ops.not_equal(source, 0)  # (batch, source_len)
        memory, forward_h, backward_h = self.encoder(self.source_embedding(source), mask=mask)
        state = self.bridge(ops.concatenate([forward_h, backward_h], axis=-1))  # (batch, units)
        logits = []
        for t in range(target_in.shape[1]):
            keys = self.w_key(memory)  # (batch, source_len, attention_units), every step
            hidden = ops.tanh(keys + ops.expand_dims(self.w_query(state), 1))
            scores = ops.squeeze(self.v(hidden), -1)  # (batch, source_len)
            scores = ops.where(mask, scores, -1e9)
            weights = ops.softmax(scores, axis=-1)
            context = ops.sum(ops.expand_dims(weights, -1) * memory, axis=1)  # (batch, 2 units)
            embedded = self.target_embedding(target_in[:, t])  # (batch, embedding_dim)
            output, [state] = self.cell(ops.concatenate([embedded, context], -1), [state])
            logits.append(self.output_layer(ops.concatenate([output, context], -1)))
        return ops.stack(logits, axis=1)  # (batch, target_len, target_vocab)


def naive_like(model):
    """A built `NaiveSeq2Seq` of the same sizes as `model` (a `Seq2SeqAttention`), same weights."""
    naive = NaiveSeq2Seq(
        model.source_vocab_size,
        model.target_vocab_size,
        model.embedding_dim,
        model.units,
        model.attention_units or model.units,
    )
    naive((ops.ones((1, 3), "int32"), ops.ones((1, 2), "int32")))
    copy_weights(model, naive)
    return naive


def copy_weights(model, naive):
    """Assigns a `Seq2SeqAttention`'s weights to the matching `NaiveSeq2Seq` variables."""
    encoder, cell = model.encoder, model.decoder_cell
    attention = cell.attention
    if model.rnn != "gru" or model.encoder_layers != 1 or not model.bidirectional:
        raise ValueError("the naive baseline covers one bidirectional GRU layer only")
    pairs = [
        (naive.source_embedding.embeddings, encoder.embedding.embeddings),
        (naive.bridge.kernel, encoder.bridges[0].kernel),
        (naive.bridge.bias, encoder.bridges[0].bias),
        (naive.target_embedding.embeddings, cell.embedding.embeddings),
        (naive.w_query.kernel, attention.query_kernel),
        (naive.w_query.bias, attention.bias),
        (naive.w_key.kernel, attention.key_kernel),
        (naive.v.kernel, ops.expand_dims(attention.score_vector, -1)),
        (naive.output_layer.kernel, cell.output_layer.kernel),
        (naive.output_layer.bias, cell.output_layer.bias),
    ]
    layers = [
        (naive.encoder.forward_layer.cell, encoder.cells[0]),
        (naive.encoder.backward_layer.cell, encoder.cells[1]),
        (naive.cell, cell.rnn_cell),
    ]
    for mine, theirs in layers:
        pairs += [
            (mine.kernel, theirs.kernel),
            (mine.recurrent_kernel, theirs.recurrent_kernel),
            (mine.bias, theirs.bias),
        ]
    for variable, value in pairs:
        variable.assign(value)
