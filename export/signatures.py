"""What gets exported: the encoder, one decoder step, whole greedy/beam decodes and text in/out.

`ExportModule` wraps a trained `Seq2SeqAttention` (and optionally its in-graph tokenizers) as
`tf.function`s with named inputs and outputs and dynamic batch and source length:

    encode(source_ids)            -> memory, projected_keys, mask, state_0..state_{n-1}
    decode_step(prev_tokens, state_0.., memory, projected_keys, mask)
                                  -> logits, attention, new_state_0..new_state_{n-1}
    greedy(source_ids)            -> tokens, scores, attention
    translate_ids(source_ids)     -> tokens, scores, attention (beam search, `beam_width`)
    serving_default(text)         -> translation, tokens, scores (tokenization in the graph)

With a lexical shortlist (`seq2seq_attn.shortlist.Shortlist`, issue 34), `translate_ids` and
`serving_default` decode each sentence over its own candidates (the export's default), and
`translate_ids_full_vocabulary` and `serving_full_vocabulary` over the whole vocabulary
(SavedModel only); and three more, for the search over the shortlist's candidates (the step
graph's output layer is gathered once):

    shortlist_output(source_ids)  -> shortlist_kernel, shortlist_bias, shortlist_positions
    decode_step_shortlist(prev_tokens, state_0.., memory, projected_keys, mask,
                          shortlist_kernel, shortlist_bias, shortlist_positions)
                                  -> logits (NEG_INF outside the row's candidates), ...
    greedy_shortlist(source_ids)  -> tokens, scores, attention (greedy, each sentence over
                                     its own candidates, computed in the graph)

The kernel and bias are the columns of the batch's union of candidates, gathered once;
`shortlist_positions` `(rows, vocab)` places each row's candidates' logits back into a full
row (`NEG_INF` for the ids outside that sentence's candidates): the host search repeats its
rows per beam, as it does the memory's.

The mask travels as float32 (1 real, 0 padding) so every runtime can feed it. Input names
never equal output names (tf2onnx rejects graphs where they do).
"""

import functools
import types

import tensorflow as tf

from seq2seq_attn.interface import new_state_name, state_name
from seq2seq_attn.search import candidates_of, shortlist_mask

SIGNATURES = ("encode", "decode_step", "greedy", "translate_ids", "serving_default")
# With a shortlist: the two graphs the host search runs (converted to ONNX on their own),
# and the whole greedy decode over the candidates (SavedModel and TFLite; ONNX joins its own).
SHORTLIST_STEP_SIGNATURES = ("shortlist_output", "decode_step_shortlist")
SHORTLIST_SIGNATURES = (*SHORTLIST_STEP_SIGNATURES, "greedy_shortlist")
SHORTLIST_OUTPUTS = ("shortlist_kernel", "shortlist_bias", "shortlist_positions")
# With a shortlist, `translate_ids` and `serving_default` decode over it (the export's default)
# and these two keep the whole vocabulary (SavedModel only).
FULL_VOCABULARY_SIGNATURES = ("translate_ids_full_vocabulary", "serving_full_vocabulary")
STEP_SIGNATURES = ("encode", "decode_step", "greedy")  # what TFLite and ONNX carry


def spec(shape, dtype, name):
    return tf.TensorSpec(shape, dtype, name=name)


def _tf_variable(variable):
    """The `tf.Variable` a Keras 3 variable (TensorFlow backend) holds, outside autocasting."""
    value = variable.value
    if not isinstance(value, tf.Variable):
        raise TypeError(f"{variable.path}: expected a tf.Variable inside, got {type(value)}")
    return value


class ExportModule(tf.Module):
    """The exported surface of a trained model.

    Args:
        model: a built `Seq2SeqAttention`.
        tokenizers: optional `seq2seq_attn.graph_tokenizer.GraphTokenizerPair` for
            `serving_default`.
        beam_width: beam of `translate_ids` and `serving_default` (1 is greedy).
        length_penalty: GNMT alpha used by those two.
        max_source_length: optional static source length (some runtimes need one); inputs
            must then be padded to exactly this length.
        shortlist: optional `seq2seq_attn.shortlist.Shortlist`: adds `shortlist_output` and
            `decode_step_shortlist` (its tables are constants of `shortlist_output`).
        output_rows: with a shortlist and an untied output layer, keep the output kernel
            transposed as a variable of its own (`output_rows`), from which the shortlist
            signatures gather the candidates' rows. A SavedModel's weights are variables, so
            without it TensorFlow transposes the whole kernel at every call (1 of the 5 ms of
            a greedy decode at the TF tutorial's size); the frozen graphs of TFLite and ONNX
            fold that transpose at conversion, so `for_saved_model()` sets it for the
            SavedModel alone.
    """

    def __init__(
        self,
        model,
        tokenizers=None,
        beam_width=4,
        length_penalty=0.0,
        max_source_length=None,
        shortlist=None,
        output_rows=False,
    ):
        super().__init__(name="seq2seq_attn_export")
        # Not in the SavedModel's object graph (see `model_variables`): TensorFlow tracks an
        # attribute that is trackable (the Keras model is) or a list, tuple or dict, never
        # another object, so the model is held by a plain one.
        self._untracked = types.SimpleNamespace(model=model, shortlist=shortlist)
        # TF Serving, `saved_model_cli run` and every TF1 or C API loader restore weights
        # through the graph's saver, which reaches only the `tf.Variable`s the SavedModel
        # tracks as such. A Keras 3 variable wraps one, and tracking the model alone left
        # every signature reading an unrestored handle there (keras-team/keras#19274). So the
        # wrapped variables are tracked, and the model is not (its weights would be saved twice).
        self.model_variables = [_tf_variable(v) for v in model.variables]
        cell = model.decoder_cell
        self.output_rows = None
        if output_rows and shortlist is not None and not cell.tie_embeddings:
            kernel = _tf_variable(cell.output_layer.kernel)  # (feature_size, vocab_size)
            self.output_rows = tf.Variable(tf.transpose(kernel), trainable=False)
        self.tokenizers = tokenizers
        self.beam_width = beam_width
        self.length_penalty = length_penalty
        self.max_source_length = max_source_length
        self.state_names = [state_name(i) for i in range(len(cell.state_sizes))]
        self.state_sizes = list(cell.state_sizes)
        self.memory_units = model.encoder.memory_units
        keys = cell.project_keys(tf.zeros([1, 1, self.memory_units]))
        self.key_units = 1 if keys is None else int(keys.shape[-1])
        length = max_source_length
        ids = spec([None, length], tf.int32, "source_ids")
        # The model's loops are explicit tf.while_loops: AutoGraph has nothing to convert, and
        # converting the package's source (and tensorflow-text's) only costs tracing time.
        trace = functools.partial(tf.function, autograph=False)
        self.encode = trace(self._encode, input_signature=[ids])
        self.decode_step = trace(self._decode_step, input_signature=self.step_specs(length))
        self.greedy = trace(self._greedy, input_signature=[ids])
        self.translate_ids = trace(self._translate_ids, input_signature=[ids])
        text = spec([None], tf.string, "text")
        if tokenizers is not None:
            self.serving_default = trace(self._serving_default, input_signature=[text])
        if shortlist is not None:
            full = functools.partial(self._translate_ids, full_vocabulary=True)
            self.translate_ids_full_vocabulary = trace(full, input_signature=[ids])
            if tokenizers is not None:
                full = functools.partial(self._serving_default, full_vocabulary=True)
                self.serving_full_vocabulary = trace(full, input_signature=[text])
            self.shortlist_output = trace(self._shortlist_output, input_signature=[ids])
            step_specs = self.step_specs(length) + self.shortlist_specs()
            self.decode_step_shortlist = trace(self._decode_step, input_signature=step_specs)
            self.greedy_shortlist = trace(self._greedy_shortlist, input_signature=[ids])

    @property
    def model(self):
        """The exported `Seq2SeqAttention`."""
        return self._untracked.model

    def for_saved_model(self):
        """The module to save as a SavedModel: this one, or where the shortlist signatures
        would transpose a variable kernel at every call, a copy keeping `output_rows`."""
        cell = self.model.decoder_cell
        if self.shortlist is None or cell.tie_embeddings or self.output_rows is not None:
            return self
        return ExportModule(
            self.model,
            tokenizers=self.tokenizers,
            beam_width=self.beam_width,
            length_penalty=self.length_penalty,
            max_source_length=self.max_source_length,
            shortlist=self.shortlist,
            output_rows=True,
        )

    def step_specs(self, source_length=None):
        """Input specs of `decode_step`, in call order."""
        states = [
            spec([None, n], tf.float32, name)
            for n, name in zip(self.state_sizes, self.state_names, strict=True)
        ]
        return [
            spec([None], tf.int32, "prev_tokens"),
            *states,
            spec([None, source_length, self.memory_units], tf.float32, "memory"),
            spec([None, source_length, self.key_units], tf.float32, "projected_keys"),
            spec([None, source_length], tf.float32, "mask"),
        ]

    @property
    def shortlist(self):
        """The `Shortlist` the shortlist signatures carry, or None."""
        return self._untracked.shortlist

    def shortlist_specs(self):
        """The shortlist inputs of `decode_step_shortlist` (`shortlist_output`'s outputs)."""
        cell = self.model.decoder_cell
        rows = cell.embedding_dim if cell.tie_embeddings else cell.feature_size
        kernel, bias, positions = SHORTLIST_OUTPUTS
        return [
            spec([rows, None], tf.float32, kernel),
            spec([None], tf.float32, bias),
            spec([None, cell.vocab_size], tf.int32, positions),
        ]

    @property
    def shortlist_signatures(self):
        """`SHORTLIST_SIGNATURES` when the module has a shortlist, else ()."""
        return SHORTLIST_SIGNATURES if self.shortlist is not None else ()

    @property
    def full_vocabulary_signatures(self):
        """The `FULL_VOCABULARY_SIGNATURES` the module has (with a shortlist), else ()."""
        return tuple(name for name in FULL_VOCABULARY_SIGNATURES if hasattr(self, name))

    def _candidates(self, source_ids):
        """Each sentence's shortlist candidates, bool `(batch, vocab)`, from the shortlist's
        tables as constants."""
        shortlist = self.shortlist
        return shortlist_mask(
            source_ids,
            tf.constant(shortlist.top),
            tf.constant(shortlist.always),
            self.model.decoder_cell.vocab_size,
        )

    def _greedy_shortlist(self, source_ids):
        out = self.model.generate(
            source_ids,
            beam_width=1,
            candidates=self._candidates(source_ids),
            output_rows=self.output_rows,
        )
        return {k: out[k] for k in ("tokens", "scores", "attention")}

    def _shortlist_output(self, source_ids):
        cell = self.model.decoder_cell
        rows = self._candidates(source_ids)  # (batch, vocab)
        kernel, bias, positions = cell.shortlist_output(candidates_of(rows), rows, self.output_rows)
        values = (tf.cast(kernel, tf.float32), tf.cast(bias, tf.float32), positions)
        return dict(zip(SHORTLIST_OUTPUTS, values, strict=True))

    def _keys_or_placeholder(self, keys, memory):
        if keys is not None:
            return keys
        return tf.zeros_like(memory[:, :, :1])  # the vanilla decoder reads no keys

    def _encode(self, source_ids):
        memory, keys, mask, states = self.model.encode(source_ids)
        out = {
            "memory": memory,
            "projected_keys": self._keys_or_placeholder(keys, memory),
            "mask": tf.cast(mask, tf.float32),
        }
        out.update(zip(self.state_names, states, strict=True))
        return out

    def _decode_step(self, prev_tokens, *args):
        """`decode_step`, and `decode_step_shortlist` when the shortlist inputs follow."""
        n = len(self.state_names)
        states, (memory, keys, mask), shortlist = list(args[:n]), args[n : n + 3], args[n + 3 :]
        if self.model.decoder_cell.attention is None:
            keys = None
        logits, new_states, weights = self.model.decode_step(
            prev_tokens, states, memory, keys, tf.cast(mask, tf.bool), shortlist or None
        )
        out = {"logits": logits, "attention": weights}
        out.update({new_state_name(i): s for i, s in enumerate(new_states)})
        return out

    def _greedy(self, source_ids):
        out = self.model.generate(source_ids, beam_width=1)
        return {k: out[k] for k in ("tokens", "scores", "attention")}

    def _translate_ids(self, source_ids, full_vocabulary=False):
        """Beam search, each sentence over its own shortlist candidates where the module
        has a shortlist (unless `full_vocabulary`)."""
        shortlisted = self.shortlist is not None and not full_vocabulary
        out = self.model.generate(
            source_ids,
            beam_width=self.beam_width,
            length_penalty=self.length_penalty,
            candidates=self._candidates(source_ids) if shortlisted else None,
            output_rows=self.output_rows if shortlisted else None,
        )
        return {k: out[k] for k in ("tokens", "scores", "attention")}

    def _serving_default(self, text, full_vocabulary=False):
        length = self.max_source_length
        shape = None if length is None else [None, length]  # a static length truncates
        source = self.tokenizers.source.tokenize(text).to_tensor(shape=shape)  # (batch, len)
        out = self._translate_ids(tf.cast(source, tf.int32), full_vocabulary)
        translation = self.tokenizers.target.detokenize(out["tokens"])
        return {"translation": translation, "tokens": out["tokens"], "scores": out["scores"]}
