"""Corpus scores for translations: BLEU, chrF and exact match, overall and by source length.

This is what ``seq2seq-attn evaluate RUN_DIR --split test`` reports. Scores are corpus-level
sacrebleu scores (BLEU with its default ``13a`` tokenizer, chrF with character order 6),
computed once on the whole test set and once on each source-length bucket, which gives the
curve of Bahdanau et al. (2015), Figure 2: BLEU against sentence length.

The module imports no TensorFlow, so scores can be computed wherever the translations are.

Example:
    >>> result = score(
    ...     hypotheses=["the cat sat on the mat", "a dog"],
    ...     references=["the cat sat on the mat", "the dog"],
    ...     sources=["le chat est assis sur le tapis", "un chien"],
    ... )
    >>> result["n"], result["exact_match"]
    (2, 0.5)
    >>> [bucket["range"] for bucket in result["buckets"]]
    ['1-10']
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from sacrebleu.metrics import BLEU, CHRF

from seq2seq_attn.errors import UserError

# Source-length buckets in whitespace-separated words, inclusive on both ends;
# ``None`` as the upper end means "and longer".
DEFAULT_BUCKETS = ((1, 10), (11, 20), (21, 30), (31, 40), (41, 50), (51, None))


def score(
    hypotheses: Sequence[str],
    references: Sequence[str],
    sources: Sequence[str],
    buckets: Sequence[tuple[int, int | None]] = DEFAULT_BUCKETS,
) -> dict[str, Any]:
    """Scores translations against one reference each, overall and per source-length bucket.

    BLEU and chrF are corpus-level sacrebleu scores (0..100). Note that corpus BLEU of a
    corpus without a single matching 4-gram is 0, however good the shorter n-grams are.
    Exact match compares each hypothesis with its reference after stripping surrounding
    whitespace. A sentence's length is the number of whitespace-separated words of its
    source; sentences whose length falls in no bucket count only in the overall scores.

    Args:
        hypotheses: The system's translations, one string per sentence.
        references: The reference translations, aligned with ``hypotheses``.
        sources: The source sentences, aligned with ``hypotheses``; only their lengths
            are used.
        buckets: ``(min_words, max_words)`` pairs, inclusive, in increasing order and not
            overlapping; ``max_words=None`` leaves the last bucket open.

    Returns:
        A dict ``{"n", "bleu", "chrf", "exact_match", "signature", "buckets"}``. ``exact_match``
        is a fraction in 0..1; ``signature`` holds the sacrebleu signatures ``{"bleu",
        "chrf"}``; ``buckets`` lists, for each non-empty bucket in order, ``{"range": "1-10",
        "min_words", "max_words", "n", "bleu", "chrf", "exact_match"}``.

    Raises:
        ValueError: If the three lists differ in length, are empty, or ``buckets`` is
            malformed.
    """
    _check_lengths(hypotheses, references, sources)
    _check_buckets(buckets)
    bleu, chrf = BLEU(), CHRF()
    result = {"n": len(hypotheses), **_scores(bleu, chrf, hypotheses, references)}
    result["signature"] = {"bleu": str(bleu.get_signature()), "chrf": str(chrf.get_signature())}
    lengths = [len(source.split()) for source in sources]
    result["buckets"] = []
    for low, high in buckets:
        members = [i for i, n in enumerate(lengths) if low <= n and (high is None or n <= high)]
        if not members:
            continue
        bucket_hyps = [hypotheses[i] for i in members]
        bucket_refs = [references[i] for i in members]
        result["buckets"].append(
            {
                "range": _range_label(low, high),
                "min_words": low,
                "max_words": high,
                "n": len(members),
                **_scores(bleu, chrf, bucket_hyps, bucket_refs),
            }
        )
    return result


def _scores(
    bleu: BLEU, chrf: CHRF, hypotheses: Sequence[str], references: Sequence[str]
) -> dict[str, float]:
    """BLEU, chrF and exact match of one set of aligned sentences."""
    hypotheses, references = list(hypotheses), list(references)
    matches = sum(h.strip() == r.strip() for h, r in zip(hypotheses, references, strict=True))
    return {
        "bleu": float(bleu.corpus_score(hypotheses, [references]).score),
        "chrf": float(chrf.corpus_score(hypotheses, [references]).score),
        "exact_match": matches / len(hypotheses),
    }


def _check_lengths(hypotheses, references, sources) -> None:
    """Raises ValueError unless the three lists are non-empty lists of strings of one length."""
    named = {"hypotheses": hypotheses, "references": references, "sources": sources}
    for name, values in named.items():
        if isinstance(values, str):
            raise ValueError(f"`{name}` must be a sequence of strings, received one string.")
    sizes = {name: len(values) for name, values in named.items()}
    if sizes["hypotheses"] == 0:
        raise ValueError(f"`hypotheses` is empty; need at least one sentence. Received {sizes}.")
    for name in ("references", "sources"):
        if sizes[name] != sizes["hypotheses"]:
            raise ValueError(
                f"`{name}` has {sizes[name]} sentences but `hypotheses` has "
                f"{sizes['hypotheses']}; they must be aligned. Received {sizes}."
            )
    for name, values in named.items():
        for i, value in enumerate(values):
            if not isinstance(value, str):
                raise ValueError(
                    f"`{name}[{i}]` must be a string, received {type(value).__name__}: {value!r}."
                )


def _check_buckets(buckets) -> None:
    """Raises ValueError unless ``buckets`` are increasing, non-overlapping (low, high) pairs."""
    if len(buckets) == 0:
        raise ValueError("`buckets` is empty; pass at least one (min_words, max_words) pair.")
    previous_high = -1
    for i, bucket in enumerate(buckets):
        if len(bucket) != 2:
            raise ValueError(
                f"`buckets[{i}]` must be a (min_words, max_words) pair, received {bucket!r}."
            )
        low, high = bucket
        bad_high = high is not None and (not isinstance(high, int) or high < low)
        if not isinstance(low, int) or low < 0 or bad_high:
            raise ValueError(
                f"`buckets[{i}]` must have 0 <= min_words <= max_words, received {bucket!r}."
            )
        if previous_high is None or low <= previous_high:
            raise ValueError(
                f"`buckets` must be increasing and not overlap; `buckets[{i}]`={bucket!r} "
                f"starts at or before the end of the previous bucket. Received {buckets!r}."
            )
        previous_high = high


def _range_label(low: int, high: int | None) -> str:
    """``"1-10"`` for a closed bucket, ``"51+"`` for an open one."""
    return f"{low}+" if high is None else f"{low}-{high}"


def format_table(result: dict[str, Any]) -> str:
    """Formats a :func:`score` result as an aligned plain-text table.

    Args:
        result: A dict returned by :func:`score`.

    Returns:
        The table: a header, an ``all`` row, then one row per bucket, e.g.::

            length        n    BLEU    chrF   exact
            all           2   92.41   88.18   50.0%
            1-10          2   92.41   88.18   50.0%
    """
    header = f"{'length':<8} {'n':>6} {'BLEU':>7} {'chrF':>7} {'exact':>7}"
    rows = [header, _table_row("all", result)]
    rows += [_table_row(bucket["range"], bucket) for bucket in result.get("buckets", [])]
    return "\n".join(rows)


def _table_row(label: str, scores: dict[str, Any]) -> str:
    """One line of :func:`format_table`."""
    return (
        f"{label:<8} {scores['n']:>6d} {scores['bleu']:>7.2f} {scores['chrf']:>7.2f} "
        f"{scores['exact_match']:>7.1%}"
    )


def write_json(result: dict[str, Any], path: str | os.PathLike) -> None:
    """Writes a :func:`score` result as indented JSON.

    Args:
        result: A dict returned by :func:`score`.
        path: The file to write; its directory must exist.

    Raises:
        UserError: If the file cannot be written.
    """
    try:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2, ensure_ascii=False)
            f.write("\n")
    except OSError as err:
        raise UserError(f"cannot write scores to {os.fspath(path)}: {err.strerror}") from err
