"""The SentencePiece models inside the TensorFlow graph (tensorflow-text), for the `tf.data`
pipeline and the SavedModel's `serving_default`.

It reads the very `.model` bytes that `seq2seq_attn.tokenizer` reads with `sentencepiece`,
and gives identical ids and decoded strings (`tests/test_graph_tokenizer.py` checks it on the
whole Bible corpus and on hard inputs). TF Serving needs the tensorflow-text ops to load it.

Example:
    >>> from seq2seq_attn.tokenizer import TokenizerPair
    >>> pair = TokenizerPair.train(["a small example"] * 20, ["un ejemplo"] * 20,
    ...                            source_vocab_size=30, target_vocab_size=30,
    ...                            byte_fallback=False)
    >>> graph = GraphTokenizerPair(pair)
    >>> ids = graph.target.tokenize(tf.constant(["un ejemplo"]))
    >>> ids.to_list() == [pair.target.encode("un ejemplo")]
    True
    >>> graph.target.detokenize(ids.to_tensor()).numpy()
    array([b'un ejemplo'], dtype=object)
"""

import tensorflow as tf
import tensorflow_text as tf_text


class GraphTokenizer(tf.Module):
    """One side's SentencePiece model as TensorFlow ops.

    Args:
        tokenizer: a `seq2seq_attn.tokenizer.SentencePieceTokenizer` (its model bytes).
    """

    def __init__(self, tokenizer, name=None):
        super().__init__(name=name)
        self.vocab_size = tokenizer.vocab_size
        # A distinct name per model: the op's kernel shares its resource by node name, and
        # in a reloaded SavedModel two unnamed models would both resolve to the first one.
        self._sp = tf_text.SentencepieceTokenizer(
            model=tokenizer.model_proto,
            out_type=tf.int32,
            add_bos=True,
            add_eos=True,
            name=f"sentencepiece_{name or 'model'}_{tokenizer.sha256[:12]}",
        )

    @tf.autograph.experimental.do_not_convert  # tensorflow-text's source too
    def tokenize(self, strings):
        """int32 RaggedTensor `(batch, (length))`: [START] ids [END] per string."""
        return self._sp.tokenize(strings)

    @tf.autograph.experimental.do_not_convert  # tensorflow-text's source too
    def detokenize(self, ids):
        """string `(batch,)` of int ids `(batch, length)` (dense or ragged); [PAD], [START] and
        [END] decode to nothing."""
        return self._sp.detokenize(ids)


class GraphTokenizerPair(tf.Module):
    """The source and target `GraphTokenizer`s of a `seq2seq_attn.tokenizer.TokenizerPair`."""

    def __init__(self, pair):
        super().__init__(name="tokenizers")
        self.source = GraphTokenizer(pair.source, name="source")
        self.target = self.source if pair.shared else GraphTokenizer(pair.target, name="target")
