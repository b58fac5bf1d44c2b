"""The attention decoder: one step (`AttentionDecoderCell.call`) and its unroll.

Split the way Keras splits `GRUCell` from `GRU`: `call` decodes one token and
is what gets exported as the `decode_step` graph; `unroll` runs the very same
`transition` over a teacher-forced target with `tf.scan`, then applies the
output projection to all steps at once.

Decoder state is a flat list of `(batch_size, units)` tensors, layer by layer
from the bottom: GRU `[h^1, ..., h^N]`, LSTM `[h^1, c^1, ..., h^N, c^N]`, and with
input feeding one more, the previous attentional vector `h~` (Luong et al. 2015,
section 3.3).
"""

import keras
import tensorflow as tf
from keras import ops

from seq2seq_attn.interface import NEG_INF
from seq2seq_attn.recurrence import make_rnn_cell
from seq2seq_attn.validation import check_layer_args


@keras.saving.register_keras_serializable(package="seq2seq_attn")
class AttentionDecoderCell(keras.layers.Layer):
    """One decoder step with attention over the encoder memory.

    Bahdanau order (default, Bahdanau et al. 2015, eq. 4-6): the previous state
    s_{i-1} attends over the memory and gives the context c_i;
    [E y_{i-1}; c_i] feeds the RNN cell, giving s_i; logits = W_o [s_i; c_i] + b_o.

    Luong order (`input_feeding=True`, Luong et al. 2015, eq. 5 and section 3.3):
    [E y_{i-1}; h~_{i-1}] feeds the RNN cell, giving s_i; s_i attends and gives
    c_i; h~_i = tanh(W_c [c_i; s_i]); logits = W_o h~_i + b_o; h~_i is carried
    to the next step as part of the state.

    Without attention (`attention=None`) the cell is the vanilla decoder whose
    only view of the source is its initial state: logits = W_o s_i + b_o.

    Stacked (`num_layers=N`, GNMT, Wu et al. 2016, section 3 and 4): x is the
    RNN input above ([E y_{i-1}; c_i] or [E y_{i-1}; h~_{i-1}]), then
    o^1_i = RNN_1(x, s^1_{i-1}), o^2_i = RNN_2(o^1_i, s^2_{i-1}) and, with a
    residual connection from the third layer on, o^l_i = RNN_l(o^{l-1}_i,
    s^l_{i-1}) + o^{l-1}_i; dropout sits between layers. The top output o^N_i
    takes the place of s_i above, and in Bahdanau order the query is the top
    layer's previous state h^N_{i-1}. Every layer starts from the encoder's
    bridge state (Marian's s2s decoder does the same); see `get_initial_states`.

    Tied embeddings (`tie_embeddings=True`, Press and Wolf 2017): W_o is the
    target embedding matrix E, logits = E (P f_i) + b_o for the output
    features f_i; P is a bias-free projection to `embedding_dim`, present only
    when the features have another size.

    Args:
        vocab_size: Positive int, target vocabulary size.
        embedding_dim: Positive int, size of the target embeddings.
        units: Positive int, size of the decoder RNN state.
        memory_units: Positive int, feature size of the encoder memory.
        attention: A `BahdanauAttention` / `LuongAttention` layer (or its
            serialized config), or None for the vanilla decoder.
        rnn: "gru" or "lstm".
        input_feeding: Bool, Luong order with input feeding (needs attention).
        dropout: Float in [0, 1), dropout on embeddings, between RNN layers
            and on output features.
        num_layers: Positive int N, stacked decoder RNN layers.
        tie_embeddings: Bool, share E with the output projection.

    Call arguments:
        prev_tokens: int `(batch_size,)`, the previous target token y_{i-1}.
        states: list of `(batch_size, units)` tensors, see `state_sizes`
            and `get_initial_states`.
        memory: `(batch_size, source_length, memory_units)` encoder states.
        projected_keys: `attention.project_keys(memory)`, or None.
        mask: bool `(batch_size, source_length)`, False at source padding.
        training: Python bool.
        shortlist: None (the full output layer), or `shortlist_output(candidates)`: the
            logits are computed for the candidates only and the other ids get `NEG_INF`.

    Returns:
        `(logits, new_states, weights)`: float32 `(batch_size, vocab_size)`,
        the new state list, float32 `(batch_size, source_length)` (all zeros
        for the vanilla decoder).

    Example:

    >>> import numpy as np
    >>> from seq2seq_attn import AttentionDecoderCell, BahdanauAttention
    >>> cell = AttentionDecoderCell(10, 4, 8, memory_units=6,
    ...                             attention=BahdanauAttention(8))
    >>> memory = np.ones((2, 5, 6), "float32")
    >>> logits, states, weights = cell(np.array([2, 2]), [np.zeros((2, 8))], memory)
    >>> logits.shape, weights.shape
    (TensorShape([2, 10]), TensorShape([2, 5]))
    """

    def __init__(
        self,
        vocab_size,
        embedding_dim,
        units,
        memory_units,
        attention=None,
        rnn="gru",
        input_feeding=False,
        dropout=0.0,
        num_layers=1,
        tie_embeddings=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_layer_args(
            rnn=rnn,
            dropout=dropout,
            vocab_size=vocab_size,
            embedding_dim=embedding_dim,
            units=units,
            memory_units=memory_units,
            num_layers=num_layers,
        )
        if not isinstance(tie_embeddings, bool):
            raise ValueError(
                f"`tie_embeddings` must be a bool, received: tie_embeddings={tie_embeddings!r}"
            )
        if isinstance(attention, dict):
            attention = keras.saving.deserialize_keras_object(attention)
        if input_feeding and attention is None:
            raise ValueError(
                "`input_feeding=True` needs an attention layer, received: attention=None"
            )
        self.vocab_size = vocab_size
        self.embedding_dim = embedding_dim
        self.units = units
        self.memory_units = memory_units
        self.attention = attention
        self.rnn = rnn
        self.input_feeding = bool(input_feeding)
        self.dropout = dropout
        self.num_layers = num_layers
        self.tie_embeddings = tie_embeddings

        self.embedding = keras.layers.Embedding(vocab_size, embedding_dim, name="embedding")
        self.rnn_cell = make_rnn_cell(rnn, units, name="rnn_cell")  # layer 1
        # Layers 2..N, a flat list (nested lists escape TensorFlow's tracking on export).
        self.upper_cells = [
            make_rnn_cell(rnn, units, name=f"rnn_cell_{layer}")
            for layer in range(2, num_layers + 1)
        ]
        self.dropout_layer = keras.layers.Dropout(dropout)
        if self.input_feeding:
            self.attentional = keras.layers.Dense(
                units, activation="tanh", use_bias=False, name="attentional"
            )
        # Under mixed precision the untied projection runs in the compute dtype (16-bit
        # matrix units: AMX, tensor cores) and its logits are cast to float32, Keras'
        # advice for a final Dense + softmax; the softmax and the loss stay float32.
        if not tie_embeddings:
            self.output_layer = keras.layers.Dense(vocab_size, name="output")
        elif self.feature_size != embedding_dim:
            self.output_projection = keras.layers.Dense(
                embedding_dim, use_bias=False, name="output_projection", dtype="float32"
            )

    @property
    def _states_per_layer(self):
        return 2 if self.rnn == "lstm" else 1

    @property
    def state_sizes(self):
        """Sizes of the state tensors, in order."""
        sizes = [self.units] * (self._states_per_layer * self.num_layers)
        return sizes + ([self.units] if self.input_feeding else [])

    @property
    def feature_size(self):
        """Size of the vector the output projection reads."""
        if self.input_feeding or self.attention is None:
            return self.units
        return self.units + self.memory_units

    def build(self, *args, **kwargs):
        self.embedding.build((None,))
        rnn_input = self.embedding_dim
        if self.attention is not None:
            rnn_input += self.units if self.input_feeding else self.memory_units
            if not self.attention.built:  # a deserialized scorer arrives built
                self.attention.build((None, self.units), (None, None, self.memory_units))
        self.rnn_cell.build((None, rnn_input))
        for cell in self.upper_cells:
            cell.build((None, self.units))
        if self.input_feeding:
            self.attentional.build((None, self.memory_units + self.units))
        if not self.tie_embeddings:
            self.output_layer.build((None, self.feature_size))
            return
        if self.feature_size != self.embedding_dim:
            self.output_projection.build((None, self.feature_size))
        self.output_bias = self.add_weight(
            shape=(self.vocab_size,), initializer="zeros", name="output_bias", dtype="float32"
        )

    def project_keys(self, memory):
        """Once-per-sentence key projection, or None without attention."""
        if self.attention is None:
            return None
        return self.attention.project_keys(memory)

    def stack(self, x, rnn_states, training=False):
        """The N RNN layers of one step (layer 1 is `rnn_cell`).

        Args:
            x: `(batch_size, rnn_input)`, the input of layer 1.
            rnn_states: the first `N * (2 if lstm else 1)` entries of the state list.
            training: Python bool.

        Returns:
            `(output, new_rnn_states)`: the top output o^N `(batch_size, units)`
            and the new per-layer states, in the order of `rnn_states`.
        """
        n = self._states_per_layer
        output, layer_states = self.rnn_cell(x, rnn_states[:n], training=training)
        new_states = list(layer_states)
        for index, cell in enumerate(self.upper_cells, start=2):
            below = output
            layer_in = self.dropout_layer(below, training=training)
            first = (index - 1) * n
            output, layer_states = cell(layer_in, rnn_states[first : first + n], training=training)
            if index >= 3:  # GNMT residual connections from the third layer on
                output = output + below
            new_states += list(layer_states)
        return output, new_states

    def transition(self, embedded, states, memory, projected_keys, mask, training=False):
        """The recurrent part of a step, shared by `call` and `unroll`.

        Returns:
            `(new_states, features, weights)`: the state list, features
            `(batch_size, feature_size)`, float32 weights `(batch_size, source_length)`.
        """
        states = list(states)
        n_rnn = self._states_per_layer * self.num_layers
        rnn_states = states[:n_rnn]
        if self.attention is None:
            output, new_rnn = self.stack(embedded, rnn_states, training=training)
            weights = ops.zeros_like(ops.cast(memory[:, :, 0], "float32"))  # (batch, source_len)
            return new_rnn, output, weights
        if self.input_feeding:
            x = ops.concatenate([embedded, states[n_rnn]], axis=-1)  # (batch, emb + units)
            output, new_rnn = self.stack(x, rnn_states, training=training)
            context, weights = self.attention(
                output, memory, mask=mask, projected_keys=projected_keys
            )
            attentional = self.attentional(ops.concatenate([context, output], axis=-1))
            return new_rnn + [attentional], attentional, weights
        # Bahdanau order: attend with the top layer's s_{i-1} (h for LSTM), then update the RNN.
        query = rnn_states[n_rnn - self._states_per_layer]  # (batch, units)
        context, weights = self.attention(query, memory, mask=mask, projected_keys=projected_keys)
        x = ops.concatenate([embedded, context], axis=-1)  # (batch, emb + memory_units)
        output, new_rnn = self.stack(x, rnn_states, training=training)
        features = ops.concatenate([output, context], axis=-1)  # (batch, units + memory_units)
        return new_rnn, features, weights

    def output_logits(self, features):
        """Float32 logits `(..., vocab_size)` of features `(..., feature_size)`.

        Untied, the product is taken in the compute dtype and cast to float32. Tied,
        the table and bias are read in the cell's compute dtype (the embedding lookup
        reads the same values) and the product is taken in float32, as Keras Hub's
        `ReversibleEmbedding` does with `reverse_dtype="float32"`.
        """
        if not self.tie_embeddings:
            return ops.cast(self.output_layer(features), "float32")
        x = ops.cast(features, "float32")
        if self.feature_size != self.embedding_dim:
            x = self.output_projection(x)  # (..., embedding_dim)
        table = ops.cast(self.embedding.embeddings, "float32")  # (vocab_size, embedding_dim)
        return ops.matmul(x, ops.transpose(table)) + ops.cast(self.output_bias, "float32")

    def candidate_logits(self, features, candidates):
        """Float32 logits `(..., candidates)` of `features (..., feature_size)` over the
        candidates' output columns only: the training softmax of `candidate_softmax`
        (Jean et al. 2015), computed as `output_logits` computes the full row.

        Args:
            features: float `(..., feature_size)`.
            candidates: int `(candidates,)` unique target ids.
        """
        candidates = tf.cast(candidates, tf.int32)  # (C,)
        if self.tie_embeddings:
            return self._gathered_logits(features, *self._tied_columns(candidates))
        kernel = tf.gather(self.output_layer.kernel, candidates, axis=1)  # (feature_size, C)
        bias = tf.gather(self.output_layer.bias, candidates)  # (C,)
        return self._gathered_logits(features, kernel, bias)

    def _tied_columns(self, candidates):
        """The tied output's float32 kernel `(embedding_dim, C)` (the candidates' table
        rows) and bias `(C,)`."""
        table = ops.cast(self.embedding.embeddings, "float32")  # (vocab_size, embedding_dim)
        bias = tf.gather(ops.cast(self.output_bias, "float32"), candidates)  # (C,)
        return tf.transpose(tf.gather(table, candidates)), bias

    def _gathered_logits(self, features, kernel, bias):
        """Float32 logits `(..., C)` of `features (..., feature_size)` times gathered output
        columns `kernel (F, C)` plus `bias (C,)`, as `output_logits` computes a full row."""
        if self.tie_embeddings:
            x = ops.cast(features, "float32")
            if self.feature_size != self.embedding_dim:
                x = self.output_projection(x)  # (..., embedding_dim)
            return ops.matmul(x, kernel) + bias
        # as `Dense` computes it: in the compute dtype, then float32
        dtype = self.output_layer.compute_dtype
        x = ops.matmul(ops.cast(features, dtype), ops.cast(kernel, dtype))
        return ops.cast(x + ops.cast(bias, dtype), "float32")

    def shortlist_output(self, candidates, rows=None, output_rows=None):
        """The output layer's columns of a candidate set, gathered once per decode call.

        Vocabulary selection (Marian's lexical shortlists; Jean et al. 2015): a step then
        multiplies its features by `(feature_size, candidates)` weights instead of
        `(feature_size, vocab_size)`, and gathers the candidates' logits back into a
        full-vocabulary row (`NEG_INF` elsewhere), so every search rule stays as it is.

        Args:
            candidates: int `(candidates,)`, unique target ids in [0, vocab_size), in any
                order (`Shortlist.candidates` gives them sorted).
            rows: optional bool `(batch_size, vocab_size)`, each sentence's own candidates
                (a subset of `candidates`): a row's other ids then get `NEG_INF` too, so a
                sentence decodes over its own candidates whatever its batch mates.
            output_rows: optional float `(vocab_size, feature_size)`, the untied output
                kernel transposed, to gather the candidates' rows from. Without it the kernel
                is transposed at every call, which a runtime whose weights are variables (a
                SavedModel) cannot fold: an export keeps this table beside the weights
                (`ExportModule(output_rows=True)`). Unused when tied.

        Returns:
            `(kernel, bias, positions)`: float32 (untied: the variables' dtype) kernel
            `(feature_size, candidates)` (tied: `(embedding_dim, candidates)`, the gathered
            table rows), bias `(candidates,)`, and int32 positions, each id's position in
            `candidates` (`candidates` itself for the ids outside): `(vocab_size,)`, or
            `(batch_size, vocab_size)` with `rows`.
        """
        candidates = tf.cast(candidates, tf.int32)  # (C,)
        if self.tie_embeddings:
            kernel, bias = self._tied_columns(candidates)  # (embedding_dim, C), (C,)
        else:
            # Rows of the transposed kernel, not columns: whole rows are copied at once (an
            # exported gather of 623 columns took 5.9 ms in onnxruntime, of rows far less).
            table = tf.transpose(self.output_layer.kernel) if output_rows is None else output_rows
            gathered = tf.gather(table, candidates)  # (C, F)
            kernel = tf.transpose(gathered)  # (feature_size, C)
            bias = tf.gather(self.output_layer.bias, candidates)  # (C,)
        count = tf.shape(candidates)[0]
        # Exact int32 arithmetic: the scatter writes position - C, the add restores it,
        # and the ids never written get C, the NEG_INF column `output_logits` appends.
        shifted = tf.scatter_nd(
            candidates[:, None], tf.range(count) - count, [self.vocab_size]
        )  # (vocab_size,)
        positions = shifted + count  # (vocab_size,)
        if rows is not None:
            positions = tf.where(rows, positions[None], count)  # (batch, vocab_size)
        return kernel, bias, positions

    def _shortlist_logits(self, features, shortlist):
        """Float32 `(batch, vocab_size)` logits of the candidates, `NEG_INF` elsewhere."""
        kernel, bias, positions = shortlist
        logits = self._gathered_logits(features, kernel, bias)  # (batch, C)
        padded = tf.pad(logits, [[0, 0], [0, 1]], constant_values=NEG_INF)  # (batch, C + 1)
        if positions.shape.rank == 1:
            return tf.gather(padded, positions, axis=1)  # (batch, vocab_size)
        # Each row its own positions: one flat gather (no batch_dims, which not every
        # runtime converts), row b reading from offset b * (C + 1).
        width = tf.shape(padded)[1]
        offsets = tf.range(tf.shape(padded)[0]) * width  # (batch,)
        flat = tf.reshape(padded, [-1])  # (batch * (C + 1),)
        return tf.gather(flat, positions + offsets[:, None])  # (batch, vocab_size)

    def call(
        self,
        prev_tokens,
        states,
        memory,
        projected_keys=None,
        mask=None,
        training=False,
        shortlist=None,
    ):
        if projected_keys is None:
            projected_keys = self.project_keys(memory)
        embedded = self.dropout_layer(self.embedding(prev_tokens), training=training)
        new_states, features, weights = self.transition(
            embedded, states, memory, projected_keys, mask, training
        )
        features = self.dropout_layer(features, training=training)
        if shortlist is not None:
            return self._shortlist_logits(features, shortlist), new_states, weights
        return self.output_logits(features), new_states, weights

    def unroll(
        self,
        target_in,
        states,
        memory,
        projected_keys=None,
        mask=None,
        training=False,
        candidates=None,
    ):
        """Teacher-forced decoding of a whole target sequence.

        Args:
            target_in: int `(batch_size, target_length)`, [START] y_1 ... y_{T-1}.
            states: as in `call`.
            memory: as in `call`.
            projected_keys: as in `call`.
            mask: as in `call`.
            candidates: optional int `(candidates,)` unique target ids: the logits are
                then those of these ids only (`candidate_logits`).

        Returns:
            `(logits, weights)`: float32 `(batch_size, target_length, vocab_size)`
            (`candidates` last with `candidates`) and float32 `(batch_size,
            target_length, source_length)`.
        """
        if projected_keys is None:
            projected_keys = self.project_keys(memory)
        embedded = self.dropout_layer(self.embedding(target_in), training=training)
        embedded = tf.transpose(embedded, [1, 0, 2])  # (target_len, batch, emb)
        batch = tf.shape(embedded)[1]
        features0 = tf.zeros([batch, self.feature_size], dtype=self.compute_dtype)
        weights0 = tf.zeros_like(tf.cast(memory[:, :, 0], "float32"))  # (batch, source_len)
        states = [tf.cast(s, self.compute_dtype) for s in states]

        def step(carry, x):
            new_states, features, weights = self.transition(
                x, carry[0], memory, projected_keys, mask, training
            )
            return new_states, features, weights

        _, features, weights = tf.scan(step, embedded, initializer=(states, features0, weights0))
        features = tf.transpose(features, [1, 0, 2])  # (batch, target_len, feature_size)
        weights = tf.transpose(weights, [1, 0, 2])  # (batch, target_len, source_len)
        features = self.dropout_layer(features, training=training)
        if candidates is not None:
            return self.candidate_logits(features, candidates), weights
        return self.output_logits(features), weights

    def get_initial_extra_states(self, batch_size):
        """Zeros for the input-feeding slot (empty list without input feeding)."""
        if not self.input_feeding:
            return []
        return [tf.zeros([batch_size, self.units], dtype=self.compute_dtype)]

    def get_initial_states(self, bridge_states, batch_size):
        """The initial state list: the bridge state for every layer, then the extra slot.

        Args:
            bridge_states: the encoder's `[h]` (GRU) or `[h, c]` (LSTM), each
                `(batch_size, units)`.
            batch_size: int or scalar tensor.

        Returns:
            A list of `len(state_sizes)` tensors `(batch_size, units)`.
        """
        return list(bridge_states) * self.num_layers + self.get_initial_extra_states(batch_size)

    def get_config(self):
        config = super().get_config()
        config.update(
            vocab_size=self.vocab_size,
            embedding_dim=self.embedding_dim,
            units=self.units,
            memory_units=self.memory_units,
            attention=(
                None
                if self.attention is None
                else keras.saving.serialize_keras_object(self.attention)
            ),
            rnn=self.rnn,
            input_feeding=self.input_feeding,
            dropout=self.dropout,
            num_layers=self.num_layers,
            tie_embeddings=self.tie_embeddings,
        )
        return config
