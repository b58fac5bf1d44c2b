"""`Seq2SeqAttention`: encoder + attention decoder, trained with `model.fit`."""

import functools

import keras
import numpy as np
import tensorflow as tf

from seq2seq_attn.attention import BahdanauAttention, LuongAttention
from seq2seq_attn.decoder import AttentionDecoderCell
from seq2seq_attn.encoder import Encoder
from seq2seq_attn.losses import MaskedAccuracy, MaskedCrossEntropy
from seq2seq_attn.search import beam_search, candidates_of, checked_options, greedy_search
from seq2seq_attn.validation import check_positive_int

# The entry points users trace (`tf.function(model.generate)`, an export of their own) run
# unconverted even where AutoGraph is on: their loops are explicit `tf.while_loop`s, and
# converting the package's source took 2.2-3.1 s of a greedy `generate`'s first trace at the
# pretrained model's size, against 0.3-0.6 s (tests/test_tracing.py).
_not_autograph = tf.autograph.experimental.do_not_convert

ATTENTION_TYPES = ("bahdanau", "luong", None)


def make_attention(attention, units, luong_score="general", normalize=False):
    """The scorer named by the config: "bahdanau", "luong" or None."""
    if attention not in ATTENTION_TYPES:
        raise ValueError(
            f"`attention` must be one of {ATTENTION_TYPES}, received: attention={attention!r}"
        )
    if attention == "bahdanau":
        return BahdanauAttention(units, normalize=normalize, name="attention")
    if attention == "luong":
        score_units = units if luong_score == "concat" else None
        return LuongAttention(score_units, score=luong_score, name="attention")
    return None


@keras.saving.register_keras_serializable(package="seq2seq_attn")
class Seq2SeqAttention(keras.Model):
    """Encoder-decoder with attention (Bahdanau et al. 2015; Luong et al. 2015).

    Trains with `model.compile(optimizer)` then `model.fit(dataset)` where the
    dataset yields `((source_ids, target_in_ids), target_out_ids)`; id 0 is
    padding on both sides. Unless given, `compile` uses the padding-masked
    `MaskedCrossEntropy` loss and `MaskedAccuracy` metric.

    Args:
        source_vocab_size: Positive int.
        target_vocab_size: Positive int.
        embedding_dim: Positive int, for source and target embeddings.
        units: Positive int, encoder RNN size per direction and decoder RNN size.
        encoder_layers: Positive int.
        decoder_layers: Positive int, stacked decoder RNN layers (attention
            reads the top one; residual connections from the third layer on).
        rnn: "gru" or "lstm", for encoder and decoder.
        bidirectional: Bool, bidirectional encoder.
        attention: "bahdanau", "luong" or None (the vanilla encoder-decoder).
        attention_units: Positive int, scorer hidden size (default `units`).
        luong_score: "dot", "general", "scaled_dot" or "concat".
        normalize: Bool, weight-normalised Bahdanau scorer.
        input_feeding: Bool, Luong order with input feeding.
        tie_embeddings: Bool, the target embedding matrix is also the output
            projection (after a projection to `embedding_dim` where the sizes differ).
        dropout: Float in [0, 1).
        start_id: Int, the [START] token id decoding begins with.
        end_id: Int, the [END] token id decoding stops at.

    Call arguments:
        inputs: `(source_ids, target_in_ids)`, int `(batch_size, source_length)`
            and `(batch_size, target_length)`; or `(source_ids, target_in_ids,
            candidates)` with int `(candidates,)` unique target ids, whose logits alone
            are computed (the training softmax of `training.candidate_softmax`; see
            `seq2seq_attn.data.candidate_targets`).

    Returns:
        Float32 logits `(batch_size, target_length, target_vocab_size)`, or
        `(batch_size, target_length, candidates)` with candidates.

    Example:

    >>> import numpy as np
    >>> from seq2seq_attn import Seq2SeqAttention
    >>> model = Seq2SeqAttention(20, 30, embedding_dim=8, units=16)
    >>> logits = model((np.array([[4, 5, 6]]), np.array([[2, 7]])))
    >>> logits.shape
    TensorShape([1, 2, 30])
    >>> model.generate(np.array([[4, 5, 6]]), max_length=4)["tokens"].shape[0]
    1
    """

    def __init__(
        self,
        source_vocab_size,
        target_vocab_size,
        embedding_dim=64,
        units=128,
        encoder_layers=1,
        decoder_layers=1,
        rnn="gru",
        bidirectional=True,
        attention="bahdanau",
        attention_units=None,
        luong_score="general",
        normalize=False,
        input_feeding=False,
        tie_embeddings=False,
        dropout=0.0,
        start_id=2,
        end_id=3,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if attention_units is not None:
            check_positive_int("attention_units", attention_units)
        check_positive_int("decoder_layers", decoder_layers)
        self.source_vocab_size = source_vocab_size
        self.target_vocab_size = target_vocab_size
        self.embedding_dim = embedding_dim
        self.units = units
        self.encoder_layers = encoder_layers
        self.decoder_layers = decoder_layers
        self.rnn = rnn
        self.bidirectional = bidirectional
        self.attention_type = attention
        self.attention_units = attention_units
        self.luong_score = luong_score
        self.normalize = normalize
        self.input_feeding = input_feeding
        self.tie_embeddings = tie_embeddings
        self.dropout = dropout
        self.start_id = start_id
        self.end_id = end_id

        self.encoder = Encoder(
            source_vocab_size,
            embedding_dim,
            units,
            decoder_units=units,
            num_layers=encoder_layers,
            rnn=rnn,
            bidirectional=bidirectional,
            dropout=dropout,
            name="encoder",
        )
        scorer = make_attention(attention, attention_units or units, luong_score, normalize)
        self.decoder_cell = AttentionDecoderCell(
            target_vocab_size,
            embedding_dim,
            units,
            memory_units=self.encoder.memory_units,
            attention=scorer,
            rnn=rnn,
            input_feeding=input_feeding,
            dropout=dropout,
            num_layers=decoder_layers,
            tie_embeddings=tie_embeddings,
            name="decoder_cell",
        )

    def build(self, input_shape=None):
        self.encoder.build()
        self.decoder_cell.build()
        self.built = True

    @_not_autograph
    def encode(self, source_ids, training=False):
        """Runs the encoder once per source batch.

        Returns:
            `(memory, projected_keys, mask, states)`: the memory
            `(batch_size, source_length, memory_units)`, the scorer's key
            projection (None without attention), the bool source mask and the
            decoder's initial state list.
        """
        source_ids = tf.cast(source_ids, tf.int32)
        memory, mask, states = self.encoder(source_ids, training=training)
        states = self.decoder_cell.get_initial_states(states, tf.shape(memory)[0])
        return memory, self.decoder_cell.project_keys(memory), mask, states

    @_not_autograph
    def decode_step(self, prev_tokens, states, memory, projected_keys, mask, shortlist=None):
        """One inference step of the decoder: `(logits, new_states, weights)`; with
        `shortlist` (`decoder_cell.shortlist_output(candidates)`) only the candidates get
        logits, the other ids `NEG_INF`."""
        return self.decoder_cell(
            tf.cast(prev_tokens, tf.int32),
            states,
            memory,
            projected_keys,
            mask,
            training=False,
            shortlist=shortlist,
        )

    @_not_autograph
    def teacher_forced(self, source_ids, target_in_ids, training=False, candidates=None):
        """Logits `(batch, target_len, vocab)` and attention `(batch, target_len, source_len)`;
        with `candidates` (int `(C,)` target ids) the logits are those ids' only."""
        memory, keys, mask, states = self.encode(source_ids, training=training)
        return self.decoder_cell.unroll(
            tf.cast(target_in_ids, tf.int32),
            states,
            memory,
            keys,
            mask,
            training=training,
            candidates=candidates,
        )

    def call(self, inputs, training=False):
        # A third input, the batch's candidate ids, restricts the logits to them
        # (`data.candidate_targets`, the training softmax of `candidate_softmax`).
        source_ids, target_in_ids, *candidates = inputs
        candidates = candidates[0] if candidates else None
        logits, _ = self.teacher_forced(source_ids, target_in_ids, training, candidates)
        return logits

    def compile(self, optimizer="adam", loss=None, metrics=None, label_smoothing=0.0, **kwargs):
        """`keras.Model.compile` with the padding-masked loss and accuracy as defaults."""
        if loss is None:
            loss = MaskedCrossEntropy(label_smoothing=label_smoothing)
        if metrics is None:
            metrics = [MaskedAccuracy()]
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

    @_not_autograph
    def generate(
        self,
        source_ids,
        max_length=None,
        beam_width=1,
        length_penalty=0.0,
        coverage_penalty=0.0,
        num_return_sequences=None,
        candidates=None,
        output_rows=None,
        **options,
    ):
        """Decodes in the graph: greedy (or sampling) for `beam_width=1`, beam search above.

        Args:
            source_ids: int `(batch_size, source_length)`, 0 is padding.
            max_length: int or scalar tensor, most tokens per output (default
                floor(max_length_ratio * source_length + max_length_offset),
                2 * source_length + 10 unless set).
            beam_width: positive Python int.
            length_penalty: GNMT alpha, float >= 0.
            coverage_penalty: GNMT beta, float >= 0.
            num_return_sequences: K, the n-best list size (at most `beam_width`);
                the result then holds `nbest_*` of K hypotheses.
            **options: `seq2seq_attn.interface.DecodeOptions` fields as Python
                values: `max_length_ratio`, `max_length_offset`, `no_repeat_ngram`,
                `top_k` or `top_p` with `temperature` (sampling, beam width 1), and
                `seed` (an int or an int64 scalar tensor). See `seq2seq_attn.search`.
            candidates: None (the full vocabulary); int `(candidates,)` unique target
                ids, for example `Shortlist.candidates(source_ids)`, the batch's; or bool
                `(batch_size, target_vocab_size)`, each sentence's own, for example
                `Shortlist.mask(source_ids)` (a sentence's output then does not depend on
                its batch mates). The output layer's columns of the ids (the union over
                the rows) are gathered once per call and every other id is never chosen
                (sampling draws from the candidates only). They must include `end_id`
                for hypotheses to finish before `max_length`.
            output_rows: with `candidates`, optionally the output kernel transposed,
                `(target_vocab_size, feature_size)`, to gather the candidates from (see
                `AttentionDecoderCell.shortlist_output`); the result does not change.

        Returns:
            dict with `tokens` int32 `(batch_size, length)` ending in [END] then
            0s, `scores` float32 `(batch_size,)`, `attention` float32
            `(batch_size, length, source_length)` and the n-best list best first:
            `nbest_tokens` `(batch_size, K, length)`, `nbest_scores`
            `(batch_size, K)`, `nbest_attention` `(batch_size, K, length,
            source_length)` (K = 1 unless asked); each token's own log-prob,
            `token_log_probs` `(batch_size, length)` and `nbest_token_log_probs`
            `(batch_size, K, length)` (0 after [END]; with no penalty they sum to the
            score); for beam search also `beam_tokens` and `beam_scores`, all
            hypotheses best first.
        """
        if num_return_sequences is not None:
            options["n_best"] = num_return_sequences
        checked_options(  # `DecodeOptions.check`: BadOption (a ValueError) for a bad value
            beam_width,
            self.target_vocab_size,
            length_penalty=length_penalty,
            coverage_penalty=coverage_penalty,
            **options,
        )
        step = self.decode_step
        if candidates is not None:
            candidates = self._checked_candidates(candidates)
            step = self._shortlist_step(candidates, beam_width, output_rows)
        memory, keys, mask, states = self.encode(source_ids)
        common = dict(
            start_id=self.start_id,
            end_id=self.end_id,
            max_length=max_length,
            length_penalty=length_penalty,
            coverage_penalty=coverage_penalty,
            **options,
        )
        if beam_width == 1:
            return greedy_search(step, states, memory, keys, mask, **common)
        return beam_search(step, states, memory, keys, mask, beam_width=beam_width, **common)

    def _shortlist_step(self, candidates, beam_width, output_rows=None):
        """`decode_step` over `candidates` (ids, or a per-sentence bool mask whose
        positions are repeated per beam like the search repeats the memory)."""
        cell = self.decoder_cell
        if candidates.dtype == tf.bool:  # (batch, vocab)
            kernel, bias, positions = cell.shortlist_output(
                candidates_of(candidates), candidates, output_rows
            )
            shortlist = (kernel, bias, tf.repeat(positions, beam_width, axis=0))
        else:
            shortlist = cell.shortlist_output(candidates, output_rows=output_rows)
        return functools.partial(self.decode_step, shortlist=shortlist)

    def _checked_candidates(self, candidates):
        """int32 candidate ids or a bool mask; ValueError for Python or NumPy candidates
        that are neither unique ids of the target vocabulary nor a `(batch, vocab)` bool
        mask (a tensor is the graph caller's to check)."""
        if isinstance(candidates, tf.Tensor | tf.Variable):
            return candidates if candidates.dtype == tf.bool else tf.cast(candidates, tf.int32)
        ids = np.asarray(candidates)
        if ids.dtype == bool and ids.ndim == 2 and ids.shape[1] == self.target_vocab_size:
            return tf.constant(ids)
        if (
            ids.ndim != 1
            or not np.issubdtype(ids.dtype, np.integer)
            or len(np.unique(ids)) != len(ids)
            or (len(ids) and (ids.min() < 0 or ids.max() >= self.target_vocab_size))
        ):
            raise ValueError(
                "`candidates` must be unique int target ids in [0, "
                f"{self.target_vocab_size}) or a bool (batch_size, {self.target_vocab_size}) "
                f"mask, received: candidates={candidates!r}"
            )
        return tf.constant(ids, tf.int32)

    def get_config(self):
        config = super().get_config()
        config.update(
            source_vocab_size=self.source_vocab_size,
            target_vocab_size=self.target_vocab_size,
            embedding_dim=self.embedding_dim,
            units=self.units,
            encoder_layers=self.encoder_layers,
            decoder_layers=self.decoder_layers,
            rnn=self.rnn,
            bidirectional=self.bidirectional,
            attention=self.attention_type,
            attention_units=self.attention_units,
            luong_score=self.luong_score,
            normalize=self.normalize,
            input_feeding=self.input_feeding,
            tie_embeddings=self.tie_embeddings,
            dropout=self.dropout,
            start_id=self.start_id,
            end_id=self.end_id,
        )
        return config
