"""In-graph WordPiece tokenization with tensorflow-text, and vocabulary building.

:class:`GraphTokenizer` runs the tokenization defined in :mod:`seq2seq_attn.wordpiece`
(U+FFFD for characters outside Unicode 14.0, delete controls, NFKC, per-character lowercase,
split on whitespace / punctuation / symbols / CJK, greedy longest-match-first WordPiece) with
TensorFlow ops, so that a SavedModel can take and return strings. Every character class,
regex and detokenization rule comes from ``wordpiece``; the pure-Python
``wordpiece.WordPieceTokenizer`` gives the same ids and strings (tests/test_tokenizer.py).

Example:
    >>> vocab = build_vocab(["Hello, world.", "Hello there!"] * 20, vocab_size=60)
    >>> tok = GraphTokenizer(vocab)
    >>> ids = tok.tokenize(tf.constant(["Hello, world."]))
    >>> [tok.vocab[i] for i in ids[0].numpy()]
    ['[START]', 'hello', ',', 'world', '.', '[END]']
    >>> tok.detokenize(ids.to_tensor()).numpy()
    array([b'hello, world.'], dtype=object)
"""

import collections
import os
from collections.abc import Iterable, Sequence

import tensorflow as tf
import tensorflow_text as tf_text
from tensorflow_text.tools.wordpiece_vocab import wordpiece_tokenizer_learner_lib as learner

from seq2seq_attn import wordpiece as wp


def _re2_class(name: str) -> str:
    """``[...]`` RE2 character class of one of ``wordpiece.character_ranges()``."""
    return "[" + wp.regex_class(wp.character_ranges()[name], "re2") + "]"


class GraphTokenizer(tf.Module):
    """WordPiece tokenizer as a ``tf.Module``: strings in, int32 ids out, and back.

    Args:
        vocab: Tokens in id order, ``[PAD] [UNK] [START] [END]`` first (see
            :func:`build_vocab`).
        lower_case: Lowercase before splitting.
        max_bytes_per_word: Words longer than this many UTF-8 bytes become ``[UNK]``.
        name: Module name.

    The ``tf.function`` methods (``tokenize``, ``detokenize``, ``lookup``, ``tokens``,
    ``get_vocab_size``) have fixed input signatures and survive ``tf.saved_model.save``.
    """

    def __init__(
        self,
        vocab: Sequence[str],
        lower_case: bool = True,
        max_bytes_per_word: int = wp.MAX_BYTES_PER_WORD,
        name: str | None = None,
    ):
        super().__init__(name=name)
        # Validates the arguments exactly as the Python twin does.
        twin = wp.WordPieceTokenizer(vocab, lower_case, max_bytes_per_word)
        self._settings = (tuple(twin.vocab), twin.lower_case, twin.max_bytes_per_word)
        self._vocab = tf.constant(twin.vocab, dtype=tf.string)
        self._wordpiece = tf_text.FastWordpieceTokenizer(
            vocab=twin.vocab,
            suffix_indicator=wp.SUFFIX_INDICATOR,
            max_bytes_per_word=max_bytes_per_word,
            token_out_type=tf.int32,
            unknown_token=wp.UNK,
            no_pretokenization=True,
            support_detokenization=False,
        )
        mapping = wp.lowercase_map()
        single = {k: ord(v) for k, v in mapping.items() if len(v) == 1}
        self._multi_char_lower = sorted((k, v) for k, v in mapping.items() if len(v) > 1)
        self._lower_table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(list(single), tf.int32), tf.constant(list(single.values()), tf.int32)
            ),
            default_value=-1,
        )
        self._patterns = {name: _re2_class(name) for name in wp.character_ranges()}

    @property
    def vocab(self) -> list[str]:
        """The tokens, in id order."""
        return list(self._settings[0])

    @property
    def vocab_size(self) -> int:
        """Number of tokens, reserved ones included."""
        return len(self._settings[0])

    @property
    def lower_case(self) -> bool:
        return self._settings[1]

    @property
    def max_bytes_per_word(self) -> int:
        return self._settings[2]

    def to_wordpiece(self) -> wp.WordPieceTokenizer:
        """The pure-Python twin with the same vocabulary and settings."""
        return wp.WordPieceTokenizer(*self._settings)

    @classmethod
    def from_wordpiece(cls, tokenizer: wp.WordPieceTokenizer, name=None) -> "GraphTokenizer":
        """The in-graph twin of a pure-Python tokenizer."""
        return cls(tokenizer.vocab, tokenizer.lower_case, tokenizer.max_bytes_per_word, name)

    def save(self, directory: str | os.PathLike, prefix: str) -> None:
        """Writes ``<prefix>.vocab.txt`` and ``<prefix>.json`` (see ``WordPieceTokenizer.save``)."""
        self.to_wordpiece().save(directory, prefix)

    @classmethod
    def load(cls, directory: str | os.PathLike, prefix: str) -> "GraphTokenizer":
        """Reads files written by :meth:`save`; DataError if they are missing or corrupt."""
        return cls.from_wordpiece(wp.WordPieceTokenizer.load(directory, prefix))

    def _normalize(self, strings: tf.Tensor) -> tf.Tensor:
        """Steps 1-4 of ``wordpiece``: (batch_size,) strings -> (batch_size,) strings."""
        strings = tf.strings.unicode_transcode(
            strings, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD
        )
        strings = tf.strings.regex_replace(strings, self._patterns["unstable"], wp.REPLACEMENT_CHAR)
        strings = tf.strings.regex_replace(strings, self._patterns["control"], "")
        strings = tf_text.normalize_utf8(strings, wp.NORMALIZATION_FORM)
        if not self.lower_case:
            return strings
        for code_point, lowered in self._multi_char_lower:
            strings = tf.strings.regex_replace(strings, f"\\x{{{code_point:X}}}", lowered)
        chars = tf.strings.unicode_decode(strings, "UTF-8")  # (batch_size, (chars)) int32
        lowered = self._lower_table.lookup(chars.flat_values)
        lowered = tf.where(lowered >= 0, lowered, chars.flat_values)
        return tf.strings.unicode_encode(chars.with_flat_values(lowered), "UTF-8")

    def _pretokenize(self, strings: tf.Tensor) -> tf.RaggedTensor:
        """Steps 1-5: (batch_size,) strings -> (batch_size, (words)) strings."""
        isolated = self._patterns["isolated"]
        return tf_text.regex_split(
            self._normalize(strings), f"{self._patterns['space']}+|{isolated}", isolated
        )

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def pretokenize(self, strings):
        """Words before WordPiece: (batch_size,) -> (batch_size, (words)) tf.string."""
        return self._pretokenize(strings)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def tokenize(self, strings):
        """Token ids with ``[START]``/``[END]``.

        Args:
            strings: (batch_size,) tf.string, UTF-8 (invalid bytes read as U+FFFD).

        Returns:
            (batch_size, (tokens)) int32 RaggedTensor.
        """
        pieces = self._wordpiece.tokenize(self._pretokenize(strings))  # (batch, (words), (pieces))
        ids = pieces.merge_dims(-2, -1)  # (batch_size, (pieces))
        rows = tf.shape(strings, out_type=tf.int64)[:1]
        start = tf.RaggedTensor.from_tensor(tf.fill(tf.concat([rows, [1]], 0), wp.START_ID))
        end = tf.RaggedTensor.from_tensor(tf.fill(tf.concat([rows, [1]], 0), wp.END_ID))
        return tf.concat([start, ids, end], axis=1)

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32)])
    def lookup(self, ids):
        """Token strings: (batch_size, length) int32 -> (batch_size, length) tf.string."""
        return tf.gather(self._vocab, ids)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def tokens(self, strings):
        """Subword strings with ``[START]``/``[END]``: (batch_size,) -> (batch_size, (tokens))."""
        return tf.gather(self._vocab, self.tokenize(strings))

    @tf.function(input_signature=[])
    def get_vocab_size(self):
        """Scalar int32 vocabulary size."""
        return tf.constant(self.vocab_size, tf.int32)

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32)])
    def detokenize(self, ids):
        """Readable text, the same as ``WordPieceTokenizer.decode`` row by row.

        Args:
            ids: (batch_size, length) int32; ``[PAD]`` and ``[START]`` are skipped and each
                row stops at its first ``[END]``. Ids outside the vocabulary are an error.

        Returns:
            (batch_size,) tf.string.
        """
        ended = tf.cumsum(tf.cast(ids == wp.END_ID, tf.int32), axis=1) > 0  # (batch, length)
        keep = ~ended & (ids != wp.PAD_ID) & (ids != wp.START_ID)
        tokens = tf.ragged.boolean_mask(tf.gather(self._vocab, ids), keep)  # (batch, (kept))
        text = tf.strings.reduce_join(tokens, axis=1, separator=" ")
        text = tf.strings.regex_replace(text, " " + wp.SUFFIX_INDICATOR, "")
        for pattern, replacement in wp.DETOKENIZE_RULES:
            text = tf.strings.regex_replace(text, pattern, replacement)
        return text


def count_words(texts: Iterable[str], lower_case: bool = True) -> collections.Counter:
    """Counts the pre-tokenized words of ``texts``.

    Uses ``wordpiece.pretokenize``, which tests/test_tokenizer.py proves equal to
    :meth:`GraphTokenizer.pretokenize` and which is several times faster on 2 CPU cores.

    Example:
        >>> count_words(["Hi, hi!"])
        Counter({'hi': 2, ',': 1, '!': 1})
    """
    counts = collections.Counter()
    for text in texts:
        counts.update(wp.pretokenize(text, lower_case))
    return counts


def _piece_starts(word: str, tokens: dict, longest: int, joiner: str) -> list[int] | None:
    """Where the greedy longest-match pieces of ``word`` start (``get_split_indices``)."""
    starts, start = [], 0
    while start < len(word):
        prefix = joiner if start else ""
        for end in range(min(len(word), start + longest), start, -1):
            if prefix + word[start:end] in tokens:
                break
        else:
            return None
        starts.append(start)
        start = end
    return starts


def _suffix_counts(word_counts, tokens: dict | None, joiner: str) -> collections.Counter:
    """Weight of every piece-start suffix ``word[s:]`` (``##`` prefixed when ``s > 0``).

    ``tokens=None`` starts a suffix at every character (the learner's first iteration).
    """
    counts = collections.Counter()
    longest = max((len(t.removeprefix(joiner)) for t in tokens), default=1) if tokens else 0
    for word, count in word_counts:
        starts = (
            range(len(word)) if tokens is None else _piece_starts(word, tokens, longest, joiner)
        )
        for start in starts or ():
            counts[(joiner if start else "") + word[start:]] += count
    return counts


def _learn_with_thresh(
    word_counts,
    thresh: int,
    params: learner.Params,
    first_counts: collections.Counter | None = None,
) -> list[str]:
    """Same vocabulary as ``learner.learn_with_thresh`` (with the joiner), much faster.

    In ``learn_with_thresh`` a sub-token's count, after "decrementing the count of all
    prefixes" by the counts of longer sub-tokens, telescopes to the summed count of the
    (word, piece start) pairs whose suffix *equals* the sub-token: substrings that are not
    such a suffix end at 0. So counting those suffixes gives the same counts in O(pieces)
    instead of O(length**2) per word; tests compare both on a corpus.
    """
    chars = learner.extract_char_tokens(word_counts)
    tokens = learner.ensure_all_tokens_exist(chars, {}, True, params.joiner)
    for iteration in range(params.num_iterations):
        if iteration == 0 and first_counts is not None:
            counts = first_counts
        else:
            counts = _suffix_counts(word_counts, tokens if iteration else None, params.joiner)
        selected = {token: n for token, n in counts.items() if n >= thresh}
        tokens = learner.ensure_all_tokens_exist(chars, selected, True, params.joiner)
    return learner.generate_final_vocabulary(params.reserved_tokens, chars, tokens)


def learn_vocab(
    word_counts: dict[str, int],
    vocab_size: int,
    reserved_tokens: Sequence[str],
    lower_thresh: int = 10,
    num_iterations: int = 4,
    max_input_tokens: int = 5_000_000,
    max_token_length: int = 50,
    max_unique_chars: int = 1000,
    slack_ratio: float = 0.05,
) -> list[str]:
    """tensorflow-text's WordPiece learner with a faster search for the count threshold.

    Filters words like ``learner.learn`` (``get_input_words``, ``get_allowed_chars``,
    ``filter_input_words``), then bisects the threshold geometrically between
    ``lower_thresh`` and the largest word count, reusing the first iteration's counts, and
    stops at the first vocabulary of 95-100% (``1 - slack_ratio``) of ``vocab_size``; if
    none is found, the largest one not above ``vocab_size`` (else the smallest, truncated).
    Arguments are those of ``learner.learn``.
    """
    if not isinstance(lower_thresh, int) or lower_thresh < 1:
        raise ValueError(f"lower_thresh must be an int >= 1, got {lower_thresh!r}")
    params = learner.Params(
        None,
        lower_thresh,
        num_iterations,
        max_input_tokens,
        max_token_length,
        max_unique_chars,
        vocab_size,
        slack_ratio,
        True,
        wp.SUFFIX_INDICATOR,
        list(reserved_tokens),
    )
    words = learner.get_input_words(
        list(word_counts.items()), params.reserved_tokens, max_token_length
    )
    words = learner.filter_input_words(
        words, learner.get_allowed_chars(words, max_unique_chars), max_input_tokens
    )
    first_counts = _suffix_counts(words, None, params.joiner)
    low, high = lower_thresh, max(lower_thresh, max((n for _, n in words), default=1))
    under, over = None, None
    while low <= high:
        thresh = max(low, min(high, round((low * high) ** 0.5)))
        vocab = _learn_with_thresh(words, thresh, params, first_counts)
        if len(vocab) > vocab_size:
            over = vocab if over is None or len(vocab) < len(over) else over
            low = thresh + 1
        else:
            under = vocab if under is None or len(vocab) > len(under) else under
            if vocab_size - len(vocab) <= slack_ratio * vocab_size:
                break
            high = thresh - 1
    return under if under is not None else over[:vocab_size]


def build_vocab(
    texts: Iterable[str], vocab_size: int, lower_case: bool = True, **learn_params
) -> list[str]:
    """Learns a WordPiece vocabulary from training sentences.

    Words come from the tokenizer's pre-tokenization (:func:`count_words`); the vocabulary
    from :func:`learn_vocab`, tensorflow-text's WordPiece learner (the one behind
    ``bert_vocab_from_dataset``), which keeps every character seen, alone and as ``##`` piece.

    Args:
        texts: Training sentences of one language.
        vocab_size: Largest vocabulary size, reserved tokens included; the learner aims at
            95-100% of it.
        lower_case: Lowercase before counting (use the same value for the tokenizer).
        **learn_params: Passed to :func:`learn_vocab` (e.g. ``lower_thresh``, the smallest
            count a piece needs, default 10; ``num_iterations``, default 4).

    Returns:
        ``[PAD] [UNK] [START] [END]``, then the characters, then pieces by frequency.

    Raises:
        ValueError: If ``vocab_size`` is too small for the reserved tokens and characters,
            or ``texts`` holds no word.
    """
    reserved = list(wp.RESERVED_TOKENS)
    if not isinstance(vocab_size, int) or vocab_size <= len(reserved):
        raise ValueError(f"vocab_size must be an int > {len(reserved)}, got {vocab_size!r}")
    counts = count_words(texts, lower_case)
    if not counts:
        raise ValueError("texts must contain at least one word, got none")
    chars = {c for word in counts for c in word}
    if len(reserved) + 2 * len(chars) > vocab_size:
        raise ValueError(
            f"vocab_size must be at least {len(reserved) + 2 * len(chars)} for the "
            f"{len(chars)} distinct characters of texts, got {vocab_size}"
        )
    return learn_vocab(counts, vocab_size, reserved, **learn_params)


class TokenizerPair(tf.Module):
    """Source and target :class:`GraphTokenizer`, saved as ``wordpiece.WordPiecePair`` files.

    Args:
        source: Tokenizer of the input language.
        target: Tokenizer of the output language.

    Example:
        >>> pair = TokenizerPair.build(["good morning"] * 20, ["buenos días"] * 20, 40, 40)
        >>> pair.target.vocab[4:8]
        ['a', 'b', 'd', 'e']
    """

    def __init__(self, source: GraphTokenizer, target: GraphTokenizer):
        super().__init__(name="tokenizer_pair")
        self.source = source
        self.target = target

    @classmethod
    def build(
        cls,
        source_texts: Iterable[str],
        target_texts: Iterable[str],
        source_vocab_size: int,
        target_vocab_size: int,
        lower_case: bool = True,
        **learn_params,
    ) -> "TokenizerPair":
        """Learns both vocabularies with :func:`build_vocab`."""
        source = build_vocab(source_texts, source_vocab_size, lower_case, **learn_params)
        target = build_vocab(target_texts, target_vocab_size, lower_case, **learn_params)
        return cls(
            GraphTokenizer(source, lower_case, name="source"),
            GraphTokenizer(target, lower_case, name="target"),
        )

    def to_wordpiece(self) -> wp.WordPiecePair:
        """The pure-Python twin."""
        return wp.WordPiecePair(self.source.to_wordpiece(), self.target.to_wordpiece())

    def save(self, directory: str | os.PathLike) -> None:
        """Writes the ``source.*`` and ``target.*`` vocabulary and settings files."""
        self.to_wordpiece().save(directory)

    @classmethod
    def load(cls, directory: str | os.PathLike) -> "TokenizerPair":
        """Reads a directory written by :meth:`save` or ``WordPiecePair.save``."""
        pair = wp.WordPiecePair.load(directory)
        return cls(
            GraphTokenizer.from_wordpiece(pair.source, name="source"),
            GraphTokenizer.from_wordpiece(pair.target, name="target"),
        )
