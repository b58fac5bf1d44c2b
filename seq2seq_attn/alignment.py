"""Word alignments and confidence scores from a hypothesis' attention and log-probabilities.

TensorFlow-free. A decoded `Translation` carries its attention `(target pieces, source
pieces)`, the piece strings of both sides and, when asked, the log-probability of each
target piece. This module merges SentencePiece pieces into the words a user sees and gives:

- a soft alignment: per target word, weights over the source words that sum to 1;
- a hard alignment in Pharaoh format (`0-0 1-2 2-1`, source index first, as fast_align and
  Marian write it): each target word aligned to exactly one source word, its arg-max;
- per-word log-probabilities (the sum of the word's pieces') and a sentence score
  normalised by length (the mean log-probability per target piece, [END] included).

Words. The tokenizer runs SentencePiece without the dummy prefix (decision 0001): a piece
that begins with the marker "▁" (U+2581) begins a word after a space, and the first piece
of a text has no marker yet begins the first word. A word is a maximal run of pieces
between spaces (the marker, or a byte piece of ASCII white space), so the words are those
of `decoded_text.split(" ")` without the empty ones. Pieces that are only spaces and the
special pieces ([START], [END], [PAD]) belong to no word. [UNK] counts as a word character.

The rule. With A the attention (rows target pieces, columns source pieces), the mass of
target word t on source word s is the sum of A over the pieces of t (rows) and the pieces
of s (columns). Attention on [START], [END] and space-only pieces is dropped and each row
renormalised to sum to 1: that is the soft alignment. The hard alignment links t to the
source word with the largest mass (the first one among equal masses). A target word whose
pieces put no mass on any source word (all of it on [START] or [END], or underflow) gets a
uniform soft row and is linked to source word 0. Summing or averaging over t's pieces
gives the same soft row and the same links.

Which row is which word (the known off-by-one). At decoder step i the attention is
computed from the state s_{i-1} (Bahdanau: before the RNN update; Luong: after feeding
y_{i-1}) and its context is used to predict y_i, so row i of the attention belongs to
target piece y_i, the token chosen at that step, and the searches store it that way
(`tokens[i]` with `attention[i]`). Nothing is shifted here. Attention models are known to
look one word ahead or behind at times (Koehn and Knowles 2017, "Six challenges for NMT",
section 3.5; Chen et al. 2020 shift attention by one step to align better); this module
reports the attention as the model computed it, without any shift.

Example:
    >>> attention = np.array([[0.0, 0.8, 0.1, 0.1, 0.0],   # "Hola" attends "Hello"
    ...                       [0.0, 0.1, 0.3, 0.5, 0.1],   # "▁mundo" attends "wor" + "ld"
    ...                       [0.0, 0.1, 0.1, 0.1, 0.7]])  # [END]
    >>> alignment = word_alignment(attention, ["[START]", "Hello", "▁wor", "ld", "[END]"],
    ...                            ["Hola", "▁mundo", "[END]"])
    >>> alignment.source_words, alignment.target_words
    (['Hello', 'world'], ['Hola', 'mundo'])
    >>> alignment.pharaoh()
    '0-0 1-1'
    >>> alignment.soft.astype(float).round(3).tolist()
    [[0.8, 0.2], [0.111, 0.889]]
    >>> scores = word_scores([-0.5, -1.0, -0.25, -0.1], ["Hol", "a", "▁mundo", "[END]"])
    >>> scores.words, round(scores.sentence, 4)
    ([-1.5, -0.25], -0.4625)
"""

import dataclasses
import re

import numpy as np

MARKER = "\u2581"  # SentencePiece's word-start marker "▁"
SPECIAL_PIECES = frozenset({"[PAD]", "[START]", "[END]"})
ALIGNMENT_KINDS = ("hard", "soft")
_BYTE_PIECE = re.compile(r"<0x([0-9A-Fa-f]{2})>")
_SPACE_BYTES = frozenset(b" \t\n\r\x0b\x0c")
_PAIR = re.compile(r"(\d+)-(\d+)")


def piece_words(pieces):
    """The words that SentencePiece `pieces` spell, and the word each piece belongs to.

    Args:
        pieces: piece strings of one text, e.g. `tokenizer.id_to_token(ids)`.

    Returns:
        `(words, owners)`: the list of word strings, and per piece the index of its word
        in `words` or None (a special or space-only piece). A piece with a space inside it
        (never made by SentencePiece's default whitespace split) belongs to the first word
        it touches.
    """
    words, owners, at_space = [], [], True
    for piece in pieces:
        owner = None
        if piece in SPECIAL_PIECES:
            owners.append(None)
            continue
        for part, space_before in _parts(piece):
            at_space = at_space or space_before
            if not part:
                continue
            if at_space:
                words.append(bytearray())
                at_space = False
            words[-1] += part
            owner = len(words) - 1 if owner is None else owner
        owners.append(owner)
    return [bytes(w).decode("utf-8", "replace") for w in words], owners


def _parts(piece):
    """`(bytes, space_before)` runs of one piece: its text split at spaces (the marker,
    white space, or a byte piece of ASCII white space)."""
    byte = _BYTE_PIECE.fullmatch(piece)
    if byte:
        value = int(byte.group(1), 16)
        return [(b"", True)] if value in _SPACE_BYTES else [(bytes([value]), False)]
    text = "".join(" " if c == MARKER or c.isspace() else c for c in piece)
    runs = text.split(" ")
    return [(run.encode("utf-8"), i > 0) for i, run in enumerate(runs)]


def _membership(owners, n_words):
    """float64 `(pieces, words)`: 1 where a piece belongs to a word."""
    member = np.zeros([len(owners), n_words])
    for piece, word in enumerate(owners):
        if word is not None:
            member[piece, word] = 1.0
    return member


@dataclasses.dataclass
class WordAlignment:
    """A word-level alignment of one hypothesis.

    Attributes:
        source_words: the source text's words.
        target_words: the hypothesis' words.
        soft: float32 `(len(target_words), len(source_words))`, rows sum to 1 (no columns
            when the source has no word).
    """

    source_words: list
    target_words: list
    soft: np.ndarray

    def hard(self):
        """`(source_index, target_index)` pairs: each target word and its arg-max source
        word, in target order (none when the source has no word)."""
        if not self.source_words:
            return []
        return [(int(s), t) for t, s in enumerate(self.soft.argmax(axis=1))]

    def pharaoh(self):
        """The hard alignment as a Pharaoh line, `"0-0 1-2 2-1"` (source-target)."""
        return format_pharaoh(self.hard())

    def soft_text(self):
        """The soft alignment as one line, as Marian writes it: per target word its
        source-word weights joined by commas, target words separated by spaces."""
        return " ".join(",".join(f"{w:.3f}" for w in row) for row in self.soft)

    def format(self, kind):
        """`pharaoh()` for kind "hard", `soft_text()` for "soft"."""
        return self.pharaoh() if check_kind(kind) == "hard" else self.soft_text()


def check_kind(kind):
    """`kind` if it is "hard" or "soft", else ValueError naming it."""
    if kind not in ALIGNMENT_KINDS:
        raise ValueError(f"`alignment` must be 'hard', 'soft' or None, received: {kind!r}")
    return kind


def word_alignment(attention, source_pieces, target_pieces):
    """The `WordAlignment` of one hypothesis (see the module docstring for the rule).

    Args:
        attention: `(len(target_pieces), len(source_pieces))`; row i is the attention of
            the step that chose `target_pieces[i]`.
        source_pieces: the source's piece strings, [START] and [END] included or not.
        target_pieces: the hypothesis' piece strings, through [END] or not.

    Returns:
        a `WordAlignment`.

    Raises:
        ValueError: the attention's shape does not match the pieces.
    """
    attention = np.asarray(attention, np.float64)
    expected = (len(target_pieces), len(source_pieces))
    if attention.shape != expected:
        raise ValueError(
            f"`attention` must have shape (target pieces, source pieces) = {expected}, "
            f"received: {attention.shape}"
        )
    source_words, source_owners = piece_words(source_pieces)
    target_words, target_owners = piece_words(target_pieces)
    to_source = _membership(source_owners, len(source_words))  # (source pieces, source words)
    to_target = _membership(target_owners, len(target_words))  # (target pieces, target words)
    mass = to_target.T @ attention @ to_source  # (target words, source words)
    total = mass.sum(axis=1, keepdims=True)
    uniform = np.full_like(mass, 1.0 / max(len(source_words), 1))
    soft = np.where(total > 0, mass / np.where(total > 0, total, 1.0), uniform)
    return WordAlignment(source_words, target_words, soft.astype(np.float32))


def format_pharaoh(pairs):
    """`"s-t s-t ..."` of `(source_index, target_index)` pairs."""
    return " ".join(f"{s}-{t}" for s, t in pairs)


def parse_pharaoh(line):
    """The `(source_index, target_index)` pairs of a Pharaoh line; ValueError if malformed."""
    pairs = []
    for item in line.split():
        match = _PAIR.fullmatch(item)
        if match is None:
            raise ValueError(f"not a Pharaoh alignment pair (source-target): {item!r}")
        pairs.append((int(match.group(1)), int(match.group(2))))
    return pairs


@dataclasses.dataclass
class WordScores:
    """Confidence of one hypothesis, in natural-log probabilities.

    Attributes:
        tokens: per target piece (through [END]), its log-probability under the model.
        words: per target word, the sum of its pieces' log-probabilities.
        sentence: the sum over all pieces ([END] and space-only ones included) divided by
            their number: the mean log-probability per piece, comparable across lengths.
    """

    tokens: list
    words: list
    sentence: float


def word_scores(token_log_probs, target_pieces):
    """The `WordScores` of one hypothesis.

    Args:
        token_log_probs: per piece of `target_pieces`, its log-probability.
        target_pieces: the hypothesis' piece strings, through [END].

    Raises:
        ValueError: the two do not have the same length.
    """
    lps = np.asarray(token_log_probs, np.float64).reshape(-1)
    if len(lps) != len(target_pieces):
        raise ValueError(
            f"`token_log_probs` must have one value per target piece ({len(target_pieces)}), "
            f"received: {len(lps)}"
        )
    words, owners = piece_words(target_pieces)
    per_word = _membership(owners, len(words)).T @ lps if len(lps) else np.zeros(len(words))
    sentence = float(lps.mean()) if len(lps) else 0.0
    return WordScores([float(x) for x in lps], [float(x) for x in per_word], sentence)


def _average_ranks(values):
    """Ranks 1..n of `values`, ties sharing their average rank (as Spearman's rho needs)."""
    values = np.asarray(values, np.float64)
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(1, len(values) + 1)
    for value in np.unique(values):
        tied = values == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def score_quality(sentence_scores, qualities, share=0.1):
    """How well sentence scores rank translations by a quality measure (sentence chrF, say).

    Args:
        sentence_scores: per translation, its `WordScores.sentence`.
        qualities: per translation, its quality against the reference.
        share: the fraction of lowest- and highest-scored translations compared.

    Returns:
        dict: `n`; `spearman` and `pearson` correlations of score and quality (None with
        fewer than 2 translations or a constant side); `lowest_quality` and
        `highest_quality`, the mean quality of the `share` lowest- and highest-scored
        translations (at least one each).
    """
    scores = np.asarray(sentence_scores, np.float64)
    quality = np.asarray(qualities, np.float64)
    if scores.shape != quality.shape:
        raise ValueError(
            f"`qualities` must have one value per score ({len(scores)}), received {len(quality)}"
        )
    n = len(scores)
    out = {"n": n, "spearman": None, "pearson": None}
    if n >= 2 and scores.std() > 0 and quality.std() > 0:
        out["pearson"] = float(np.corrcoef(scores, quality)[0, 1])
        out["spearman"] = float(np.corrcoef(_average_ranks(scores), _average_ranks(quality))[0, 1])
    if n:
        k = max(1, int(round(share * n)))
        order = np.argsort(scores, kind="stable")
        out["lowest_quality"] = float(quality[order[:k]].mean())
        out["highest_quality"] = float(quality[order[-k:]].mean())
    return out
