"""The encoder: embedding, stacked (bi)directional RNN, and the bridge to the decoder."""

import keras
from keras import ops

from seq2seq_attn.recurrence import make_rnn_cell, run_rnn, run_rnns
from seq2seq_attn.validation import check_layer_args


@keras.saving.register_keras_serializable(package="seq2seq_attn")
class Encoder(keras.layers.Layer):
    """Reads source ids, emits the memory h_1..h_S and the decoder's initial state.

    Embedding (id 0 is padding) -> `num_layers` RNN layers
    (bidirectional by default, concatenating both directions) with dropout
    between them -> memory. The bridge maps the final states of the top layer
    (both directions concatenated) through `tanh(W x + b)` to the decoder's
    initial state, as Bahdanau et al. (2015, appendix A.2.2) do with the
    backward state.

    Args:
        vocab_size: Positive int, source vocabulary size.
        embedding_dim: Positive int.
        units: Positive int, RNN size per direction.
        decoder_units: Positive int, size of the decoder state the bridge makes.
        num_layers: Positive int, number of stacked RNN layers.
        rnn: "gru" or "lstm".
        bidirectional: Bool.
        dropout: Float in [0, 1), on embeddings and between layers.

    Call arguments:
        source_ids: int `(batch_size, source_length)`, 0 is padding.
        training: Python bool.

    Returns:
        `(memory, mask, states)`: `(batch_size, source_length, memory_units)`,
        bool `(batch_size, source_length)`, and a list of `(batch_size,
        decoder_units)` tensors (`[h]` for GRU, `[h, c]` for LSTM).

    Example:

    >>> import numpy as np
    >>> from seq2seq_attn import Encoder
    >>> encoder = Encoder(20, 8, 16, decoder_units=32)
    >>> memory, mask, states = encoder(np.array([[5, 6, 7, 0]]))
    >>> memory.shape, len(states), states[0].shape
    (TensorShape([1, 4, 32]), 1, TensorShape([1, 32]))
    """

    def __init__(
        self,
        vocab_size,
        embedding_dim,
        units,
        decoder_units,
        num_layers=1,
        rnn="gru",
        bidirectional=True,
        dropout=0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_layer_args(
            rnn=rnn,
            dropout=dropout,
            vocab_size=vocab_size,
            embedding_dim=embedding_dim,
            units=units,
            decoder_units=decoder_units,
            num_layers=num_layers,
        )
        self.vocab_size = vocab_size
        self.embedding_dim = embedding_dim
        self.units = units
        self.decoder_units = decoder_units
        self.num_layers = num_layers
        self.rnn = rnn
        self.bidirectional = bool(bidirectional)
        self.dropout = dropout

        self.embedding = keras.layers.Embedding(vocab_size, embedding_dim, name="embedding")
        self.dropout_layer = keras.layers.Dropout(dropout)
        directions = ("forward", "backward") if self.bidirectional else ("forward",)
        # A flat list (nested lists escape TensorFlow's tracking on export):
        # layer i, direction d is cells[i * len(directions) + d].
        self.cells = [
            make_rnn_cell(rnn, units, name=f"{d}_{i}")
            for i in range(num_layers)
            for d in directions
        ]
        n_states = 2 if rnn == "lstm" else 1
        self.bridges = [
            keras.layers.Dense(decoder_units, activation="tanh", name=f"bridge_{k}")
            for k in range(n_states)
        ]

    @property
    def _directions(self):
        return 2 if self.bidirectional else 1

    @property
    def memory_units(self):
        """Feature size of the memory: units, doubled when bidirectional."""
        return self.units * self._directions

    def build(self, source_shape=None):
        self.embedding.build((None, None))
        for i, cell in enumerate(self.cells):
            first_layer = i < self._directions
            cell.build((None, self.embedding_dim if first_layer else self.memory_units))
        for bridge in self.bridges:
            bridge.build((None, self.memory_units))

    def _layer(self, cells, x, mask, training):
        """One (bi)directional layer: outputs joined on features, final states per kind."""
        reverse = [d == 1 for d in range(len(cells))]
        if training:  # a loop per direction: the two run side by side on two cores
            runs = [run_rnn(c, x, mask, reverse=r) for c, r in zip(cells, reverse, strict=True)]
        else:  # one loop: half the iterations' bookkeeping at inference (issue 34)
            runs = run_rnns(cells, x, mask, reverse)
        outputs = ops.concatenate([out for out, _ in runs], axis=-1)  # (batch, len, memory_units)
        finals = [
            ops.concatenate(kind, axis=-1) for kind in zip(*[s for _, s in runs], strict=True)
        ]
        return outputs, finals  # finals: [h] or [h, c], each (batch, memory_units)

    def call(self, source_ids, training=False):
        mask = ops.not_equal(source_ids, 0)  # (batch, source_len)
        x = self.dropout_layer(self.embedding(source_ids), training=training)
        n = self._directions
        for i in range(self.num_layers):
            x, final = self._layer(self.cells[i * n : (i + 1) * n], x, mask, training)
            if i + 1 < self.num_layers:
                x = self.dropout_layer(x, training=training)
        states = [bridge(s) for bridge, s in zip(self.bridges, final, strict=True)]
        # Padded positions of the memory are exactly zero.
        memory = x * ops.expand_dims(ops.cast(mask, x.dtype), -1)
        return memory, mask, states

    def compute_mask(self, *args, **kwargs):
        return None

    def get_config(self):
        config = super().get_config()
        config.update(
            vocab_size=self.vocab_size,
            embedding_dim=self.embedding_dim,
            units=self.units,
            decoder_units=self.decoder_units,
            num_layers=self.num_layers,
            rnn=self.rnn,
            bidirectional=self.bidirectional,
            dropout=self.dropout,
        )
        return config
