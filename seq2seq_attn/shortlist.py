"""Lexical shortlists: the target pieces a sentence's translation can use, from its source pieces.

Vocabulary selection as Marian's lexical shortlists do it (Bergamot), TensorFlow-free:

1. IBM model 1 (Brown et al. 1993, eq. 20 and the EM updates of its section 4) learns the
   translation probabilities p(t|s) between SentencePiece ids of the training pairs, with a
   NULL source token in every sentence, by a few iterations of expectation-maximisation.
   Each iteration runs over every (source position, target position) link of the corpus at
   once in NumPy: gathers, `np.add.reduceat` over each target position's links and
   `np.bincount` into the co-occurring (s, t) pairs; no Python loop over sentence pairs.
2. Each source piece keeps its `top_k` target pieces by p(t|s); the `frequent` most frequent
   target pieces of the training targets and the special ids ([PAD], [UNK], [START], [END])
   are candidates of every sentence.
3. A sentence's (or a batch's) candidates are the union of its source pieces' rows, the
   frequent pieces and the special ids: `Shortlist.candidates`, sorted and unique, which a
   decoder uses to gather its output-layer rows once per call and map ids back.

Stored beside the model as `shortlist.npz` (ids only, `FORMAT`), see `Shortlist.save`.

Example:
    >>> pairs = [([5, 6], [7, 8]), ([5, 9], [7, 10]), ([11, 6], [12, 8])]
    >>> shortlist = build([s for s, _ in pairs], [t for _, t in pairs], 12, 13,
    ...                   top_k=1, frequent=1)
    >>> shortlist.candidates([[2, 6, 3]]).tolist()
    [0, 1, 2, 3, 7, 8]
"""

import json
import time
from pathlib import Path

import numpy as np

from seq2seq_attn.errors import UserError
from seq2seq_attn.interface import PAD_ID
from seq2seq_attn.tokenizer import END_ID, START_ID, UNK_ID

FORMAT = "seq2seq_attn.shortlist/1"
FILE = "shortlist.npz"
SPECIAL_IDS = (PAD_ID, UNK_ID, START_ID, END_ID)
# A batch whose candidates are more than this share of the target vocabulary decodes over the
# full vocabulary (the translator and the server): at batch 64 the Bible test verses' union
# was 76% of it, and onnxruntime decoded over it 0.66-0.81x as fast (decision 0034).
MAX_SHARE = 0.5
# The runtimes (host search, server, bulk) take the gathered columns (the shortlist graphs)
# only where a step computes at most this many rows (sentences x beams); more rows run the full
# step with each row's logits masked to its candidates. onnxruntime multiplies by the gathered
# columns, a run-time matrix, without the packing it does once for a constant weight, which
# costs more than the columns save beyond a few rows (the shipped model: 1 verse with beam 4,
# 37.5 ms over the columns against 41.4 masked; 4 verses with beam 4, 82.0 against 79.8;
# `benchmarks/shortlist_paths.py`, decision 0040).
MAX_ROWS = 4


def columns_pay(rows, union, vocab):
    """Whether a step of `rows` rows decodes over its batch's `union` of candidates (the
    gathered columns) rather than over the `vocab` columns masked per row."""
    return rows <= MAX_ROWS and union <= MAX_SHARE * vocab


# The `shortlist:` section of a config (chosen by benchmarks/shortlist_coverage.py, see
# docs/decisions/0030-lexical-shortlist-sizes.md); `shortlist: null` builds none.
DEFAULTS = {"top_k": 100, "frequent": 500}
ITERATIONS = 5
CHUNK_LINKS = 1 << 22  # links per chunk: bounds the memory of one EM pass


def check_options(options):
    """UserError naming the first bad `shortlist:` value; returns it with defaults (or None)."""
    if options is None:
        return None
    if not isinstance(options, dict):
        raise UserError(
            f"shortlist must be a mapping with top_k and frequent, or null, got {options!r}"
        )
    for key in options:
        if key not in DEFAULTS:
            raise UserError(f"unknown config key shortlist.{key}; valid keys: top_k, frequent")
    options = {**DEFAULTS, **options}
    for key, value in options.items():
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise UserError(f"shortlist.{key} must be a positive integer, got {value!r}")
    return options


def _strip(ids):
    """int64 ids without [PAD], [START] and [END] (what IBM model 1 aligns)."""
    ids = np.asarray(ids, np.int64).ravel()
    return ids[(ids != PAD_ID) & (ids != START_ID) & (ids != END_ID)]


def _chunks(source_ids, target_ids, source_vocab_size, target_vocab_size):
    """`(sources, targets)` lists of stripped sentences, cut into chunks of about
    `CHUNK_LINKS` links; every source sentence gets the NULL token (`source_vocab_size`)."""
    chunk, links = ([], []), 0
    for source, target in zip(source_ids, target_ids, strict=True):
        source, target = _strip(source), _strip(target)
        if not len(target):
            continue
        low, high = min(source.min(initial=0), target.min()), target.max()
        if low < 0 or high >= target_vocab_size or source.max(initial=0) >= source_vocab_size:
            raise ValueError(
                f"an id is outside the vocabularies ({source_vocab_size}, {target_vocab_size})"
            )
        chunk[0].append(np.append(source, source_vocab_size))
        chunk[1].append(target)
        links += (len(source) + 1) * len(target)
        if links >= CHUNK_LINKS:
            yield chunk
            chunk, links = ([], []), 0
    if chunk[0]:
        yield chunk


def _links(sources, targets, target_vocab_size):
    """The links of a chunk, grouped by target position.

    Returns:
        `(keys, block_starts)`: int64 `s * target_vocab_size + t` of every (source position,
        target position) pair, `(links,)`, the source positions of one target position
        contiguous; and the first link of each target position, `(target_positions,)`.
    """
    source_len = np.array([len(s) for s in sources])
    target_len = np.array([len(t) for t in targets])
    flat_source, flat_target = np.concatenate(sources), np.concatenate(targets)
    source_start = np.concatenate([[0], np.cumsum(source_len)[:-1]])
    block = np.repeat(source_len, target_len)  # (target_positions,) links per target position
    block_starts = np.concatenate([[0], np.cumsum(block)[:-1]])
    # Position of each link inside its block, then the source position it links.
    within = np.arange(block.sum()) - np.repeat(block_starts, block)
    source_pos = np.repeat(np.repeat(source_start, target_len), block) + within
    keys = flat_source[source_pos] * target_vocab_size + np.repeat(flat_target, block)
    return keys, block_starts


def ibm1(
    source_ids,
    target_ids,
    source_vocab_size,
    target_vocab_size,
    iterations=ITERATIONS,
    progress=None,
):
    """IBM model 1's translation probabilities p(t|s) by EM, uniform start.

    Args:
        source_ids: sequence of 1-D int sequences (source pieces; [PAD], [START], [END] are
            dropped, NULL is added).
        target_ids: as many target-piece sequences.
        source_vocab_size, target_vocab_size: vocabulary sizes (ids must be below them).
        iterations: EM iterations.
        progress: optional `progress(text)` called before each stage.

    Returns:
        `(source, target, prob)`: the co-occurring pairs `(pairs,)` sorted by (source, target)
        and p(target | source); the NULL source token is id `source_vocab_size`.
    """
    null_id, width = source_vocab_size, target_vocab_size
    pieces = _chunks(source_ids, target_ids, source_vocab_size, width)
    chunks = [_links(s, t, width) for s, t in pieces]
    if not chunks:
        raise UserError("cannot build a shortlist from no sentence pairs")
    keys_all = np.unique(np.concatenate([np.unique(keys) for keys, _ in chunks]))
    chunks = [(np.searchsorted(keys_all, k).astype(np.int32), b) for k, b in chunks]
    source_of = keys_all // width  # (pairs,)
    prob = np.full(len(keys_all), 1.0 / width)
    for iteration in range(iterations):
        if progress:
            progress(f"IBM model 1: EM iteration {iteration + 1}/{iterations}")
        counts = np.zeros(len(keys_all))
        for index, block_starts in chunks:
            linked = prob[index]  # (links,) p(t|s) of every link
            total = np.add.reduceat(linked, block_starts)  # (target_positions,)
            sizes = np.diff(np.append(block_starts, len(index)))
            posterior = linked / np.repeat(total, sizes)  # alignment probability of each link
            counts += np.bincount(index, weights=posterior, minlength=len(keys_all))
        per_source = np.bincount(source_of, weights=counts, minlength=null_id + 1)
        prob = counts / per_source[source_of]
    return source_of, keys_all % width, prob


def top_targets(source, target, prob, source_vocab_size, top_k):
    """int32 `(source_vocab_size, top_k)`: each source piece's targets by p(t|s), highest first
    (ties: lower id first); rows with fewer co-occurring targets are padded with [PAD]."""
    keep = source < source_vocab_size  # not NULL
    source, target, prob = source[keep], target[keep], prob[keep]
    order = np.lexsort((target, -prob, source))
    source, target = source[order], target[order]
    first = np.searchsorted(source, np.arange(source_vocab_size))
    rank = np.arange(len(source)) - first[source]
    kept = rank < top_k
    top = np.full((source_vocab_size, top_k), PAD_ID, np.int32)
    top[source[kept], rank[kept]] = target[kept]
    return top


def most_frequent(target_ids, target_vocab_size, count):
    """Sorted int32 ids of the `count` most frequent target pieces (ties: lower id first)."""
    flat = np.concatenate([_strip(t) for t in target_ids] or [np.zeros(0, np.int64)])
    return top_ids(np.bincount(flat, minlength=target_vocab_size), count)


def top_ids(counts, count):
    """Sorted int32 ids of the `count` largest of `counts` (one per id) above 0; ties go to
    the lower id."""
    order = np.argsort(-counts, kind="stable")[:count]
    return np.sort(order[counts[order] > 0]).astype(np.int32)


def build(
    source_ids,
    target_ids,
    source_vocab_size,
    target_vocab_size,
    top_k=DEFAULTS["top_k"],
    frequent=DEFAULTS["frequent"],
    iterations=ITERATIONS,
    progress=None,
):
    """The `Shortlist` of parallel id sequences (see `ibm1` for the arguments)."""
    source, target, prob = ibm1(
        source_ids, target_ids, source_vocab_size, target_vocab_size, iterations, progress
    )
    top = top_targets(source, target, prob, source_vocab_size, top_k)
    common = most_frequent(target_ids, target_vocab_size, frequent)
    info = {
        "top_k": top_k,
        "frequent": frequent,
        "iterations": iterations,
        "pairs": len(source_ids),
    }
    return Shortlist(top, common, target_vocab_size, info)


class Shortlist:
    """Per-source-piece candidate target pieces, plus the pieces every sentence may use.

    Args:
        top: int `(source_vocab_size, top_k)`, each source piece's top-k target ids.
        frequent: int `(n,)`, the most frequent target ids.
        target_vocab_size: the full target vocabulary the ids index.
        info: dict of how it was built (sizes, iterations, pairs).
    """

    def __init__(self, top, frequent, target_vocab_size, info=None):
        self.top = np.array(top, np.int32)
        self.frequent = np.unique(np.asarray(frequent, np.int32))
        self.target_vocab_size = int(target_vocab_size)
        self.info = dict(info or {})
        self.always = np.union1d(self.frequent, SPECIAL_IDS).astype(np.int32)
        ids = np.concatenate([self.top.ravel(), self.always])
        if self.top.ndim != 2 or ids.min() < 0 or ids.max() >= self.target_vocab_size:
            raise ValueError(f"shortlist ids must lie in [0, {self.target_vocab_size})")
        # [PAD], [START] and [END] add nothing of their own (as `top_targets` builds them),
        # so padding a sentence in a batch leaves its candidates as they are.
        self.top[[PAD_ID, START_ID, END_ID]] = PAD_ID

    @property
    def source_vocab_size(self):
        return self.top.shape[0]

    @property
    def top_k(self):
        return self.top.shape[1]

    def candidates(self, source_ids_batch):
        """Sorted unique int32 target ids of a sentence or a batch (the union over it).

        Args:
            source_ids_batch: source ids, `(source_length,)`, `(batch_size, source_length)`
                or a list of unequal rows; [PAD], [START] and [END] add nothing of their own.

        Returns:
            int32 `(candidates,)`: the top-k targets of every source id, the frequent target
            ids and the special ids, ascending; position i of a decoder's gathered output
            layer is target id `candidates[i]`.
        """
        if isinstance(source_ids_batch, np.ndarray):
            ids = self._source_ids(source_ids_batch)
        else:
            ids = self._source_ids(np.concatenate([np.ravel(r) for r in source_ids_batch] or [[]]))
        chosen = np.zeros(self.target_vocab_size, bool)  # a mask: no sort of n * top_k ids
        chosen[self.always] = True
        chosen[self.top[ids]] = True
        return np.flatnonzero(chosen).astype(np.int32)

    def mask(self, source_ids_batch):
        """Each sentence's own candidates: bool `(batch_size, target_vocab_size)`.

        What `Seq2SeqAttention.generate(candidates=...)` takes to decode each sentence over
        its own candidates whatever its batch mates (row i is `candidates(row i)`).

        Args:
            source_ids_batch: `(batch_size, source_length)` ids or a list of unequal rows.
        """
        rows = list(source_ids_batch)
        chosen = np.zeros([len(rows), self.target_vocab_size], bool)
        chosen[:, self.always] = True
        for i, row in enumerate(rows):
            chosen[i, self.top[self._source_ids(row)].ravel()] = True
        return chosen

    def _source_ids(self, ids):
        """`ids` flat as int64; ValueError where one lies outside the source vocabulary."""
        ids = np.asarray(ids, np.int64).ravel()
        if len(ids) and (ids.min() < 0 or ids.max() >= self.source_vocab_size):
            raise ValueError(f"source ids must lie in [0, {self.source_vocab_size})")
        return ids

    def save(self, path):
        """Writes `path` (compressed .npz, ids only): format, top, frequent,
        target_vocab_size, info."""
        np.savez_compressed(
            path,
            format=np.array(FORMAT),
            top=self.top,
            frequent=self.frequent,
            target_vocab_size=np.array(self.target_vocab_size, np.int64),
            info=np.array(json.dumps(self.info)),
        )

    @classmethod
    def load(cls, path):
        """Reads a file written by `save`.

        Raises:
            UserError: a missing, damaged or unknown-format file.
        """
        try:
            with np.load(path, allow_pickle=False) as stored:
                if str(stored["format"]) != FORMAT:
                    raise ValueError(f"unknown format {str(stored['format'])!r}")
                return cls(
                    stored["top"],
                    stored["frequent"],
                    int(stored["target_vocab_size"]),
                    json.loads(str(stored["info"])),
                )
        except (OSError, ValueError, KeyError) as err:
            raise UserError(f"cannot load the shortlist {path}: {err}") from None


def load_run(run_dir):
    """The `Shortlist` stored in a run (or export) directory, or None when it has none."""
    path = Path(run_dir) / FILE
    return Shortlist.load(path) if path.exists() else None


def coverage(shortlist, source_ids, target_ids):
    """How well sentence-level candidate sets cover reference translations.

    Returns:
        dict: `coverage`, the share of reference target pieces ([PAD]/[START]/[END] not
        counted) inside their own sentence's candidates; `mean_candidates`, the average
        candidate-set size; `share_of_vocabulary`, that size over the target vocabulary.
    """
    inside = total = size = 0
    for source, target in zip(source_ids, target_ids, strict=True):
        candidates = shortlist.candidates(source)
        reference = _strip(target)
        inside += int(np.isin(reference, candidates).sum())
        total += len(reference)
        size += len(candidates)
    mean = size / max(len(source_ids), 1)
    return {
        "coverage": inside / max(total, 1),
        "mean_candidates": mean,
        "share_of_vocabulary": mean / shortlist.target_vocab_size,
    }


def encode_pairs(pairs, tokenizers):
    """`(source_ids, target_ids)` lists of int32 arrays of text pairs (with [START]/[END])."""
    source = [np.array(tokenizers.source.encode(s), np.int32) for s, _ in pairs]
    target = [np.array(tokenizers.target.encode(t), np.int32) for _, t in pairs]
    return source, target


def build_for_run(run_dir, pairs, top_k, frequent, progress=None, sample=1000):
    """Builds and writes `run_dir/shortlist.npz` from the run's training `pairs`, encoded with
    the run's tokenizers (`run_dir/tokenizer/`).

    Returns:
        dict summary: path, top_k, frequent, source and target vocabulary sizes, pairs,
        seconds, mean candidates per sentence (over the first `sample` training pairs).
    """
    from seq2seq_attn.tokenizer import TokenizerPair

    started = time.perf_counter()
    tokenizers = TokenizerPair.load(Path(run_dir) / "tokenizer")
    if progress:
        progress(f"encoding {len(pairs)} training pairs")
    source, target = encode_pairs(pairs, tokenizers)
    shortlist = build(
        source,
        target,
        tokenizers.source.vocab_size,
        tokenizers.target.vocab_size,
        top_k,
        frequent,
        progress=progress,
    )
    path = Path(run_dir) / FILE
    shortlist.save(path)
    seconds = time.perf_counter() - started
    measured = coverage(shortlist, source[:sample], target[:sample])
    return {
        "path": str(path),
        "top_k": top_k,
        "frequent": frequent,
        "source_vocab_size": shortlist.source_vocab_size,
        "target_vocab_size": shortlist.target_vocab_size,
        "pairs": len(pairs),
        "seconds": round(seconds, 2),
        "mean_candidates": round(measured["mean_candidates"], 1),
    }


def summary_line(summary):
    """The one line `seq2seq-attn shortlist` prints."""
    share = summary["mean_candidates"] / summary["target_vocab_size"]
    return (
        f"shortlist: top {summary['top_k']} per source piece + {summary['frequent']} frequent "
        f"+ 4 special ids, from {summary['pairs']} pairs in {summary['seconds']:.1f} s; "
        f"{summary['mean_candidates']:.0f} of {summary['target_vocab_size']} target pieces "
        f"({share:.1%}) per training sentence on average; written to {summary['path']}"
    )
