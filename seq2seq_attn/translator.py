"""Loading a trained run directory and translating text with it."""

import dataclasses
import json
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from seq2seq_attn import model as _model  # noqa: F401  (registers the classes load_model needs)
from seq2seq_attn import shortlist as _shortlist
from seq2seq_attn.alignment import check_kind
from seq2seq_attn.errors import UserError
from seq2seq_attn.interface import (
    BadOption,
    DecodeOptions,
    Translation,
    check_max_length,
    with_prefix,
)
from seq2seq_attn.placeholders import resolve as resolve_placeholders
from seq2seq_attn.placeholders import translate_protected
from seq2seq_attn.tokenizer import TokenizerPair

MODEL_FILE = "model.keras"
TOKENIZER_DIR = "tokenizer"
RUN_INFO_FILE = "run.json"


def check_run_dir(run_dir):
    """Raises UserError unless `run_dir` holds a model and its tokenizer."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"run directory {run_dir} does not exist")
    if not (run_dir / MODEL_FILE).exists() and (run_dir / "manifest.json").is_file():
        raise UserError(
            f"{run_dir} is an export, not a training run: serve it with `seq2seq-attn serve "
            f"{run_dir}`, or give the run directory it was exported from"
        )
    for name in (MODEL_FILE, TOKENIZER_DIR):
        if not (run_dir / name).exists():
            raise UserError(
                f"run directory {run_dir} has no {name}: is it a finished training run?"
            )
    return run_dir


class Translator:
    """A trained model plus its tokenizers; `translate` takes and returns text.

    Example:

    >>> translator = Translator.load("runs/dates")  # doctest: +SKIP
    >>> translator.translate(["3 March 2021"])[0].text  # doctest: +SKIP
    '2021-03-03'

    With a `shortlist` (`seq2seq_attn.shortlist.Shortlist`; `load` reads the run's
    `shortlist.npz`), each sentence decodes over its own candidate target pieces (its batch
    mates change nothing); `translate(..., full_vocabulary=True)` decodes over the whole
    vocabulary.
    """

    def __init__(self, model, tokenizers, run_info=None, shortlist=None):
        self.model = model
        self.tokenizers = tokenizers
        self.run_info = run_info or {}
        self.shortlist = shortlist
        self._generators = {}
        self._scorer = None

    @classmethod
    def load(cls, run_dir):
        run_dir = check_run_dir(run_dir)
        tokenizers = TokenizerPair.load(run_dir / TOKENIZER_DIR)
        try:
            model = keras.saving.load_model(run_dir / MODEL_FILE, compile=False, safe_mode=True)
        except Exception as err:  # a truncated or foreign .keras file
            message = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise UserError(f"cannot load {run_dir / MODEL_FILE}: {message}") from None
        info_path = run_dir / RUN_INFO_FILE
        info = json.loads(info_path.read_text()) if info_path.exists() else {}
        return cls(model, tokenizers, info, _shortlist.load_run(run_dir))

    def _generator(self, options, prefixed=False, shortlisted=False):
        """A traced `model.generate` per option set but the seed (an input, like the ids),
        with a `target_prefix` input `(batch, P)` when `prefixed` (else none: no prefix ops)
        and the `candidates` input, bool `(batch, vocab)`, when `shortlisted` (else the full
        vocabulary)."""
        key = (dataclasses.replace(options, seed=None), prefixed, shortlisted)
        if key not in self._generators:
            kwargs = key[0].search_kwargs()
            del kwargs["seed"], kwargs["n_best"]
            self._generators[key] = tf.function(
                lambda ids, max_length, seed, prefix, candidates: self.model.generate(
                    ids,
                    max_length=max_length,
                    beam_width=options.beam_width,
                    num_return_sequences=options.n_best,
                    seed=seed if options.sampling else None,
                    target_prefix=prefix if prefixed else None,
                    candidates=candidates if shortlisted else None,
                    **kwargs,
                ),
                input_signature=[
                    tf.TensorSpec([None, None], tf.int32),
                    tf.TensorSpec([], tf.int32),
                    tf.TensorSpec([], tf.int64),
                    tf.TensorSpec([None, None], tf.int32),
                    tf.TensorSpec([None, None], tf.bool),
                ],
                autograph=False,  # explicit tf.while_loops: nothing for AutoGraph to convert
            )
        return self._generators[key]

    def options(self, beam_width=1, length_penalty=0.0, **options):
        """The checked `DecodeOptions`, the beam at most the target vocabulary size, with a
        seed when sampling; `BadOption` (a UserError: the CLI's one line) naming a bad value."""
        options = DecodeOptions(beam_width=beam_width, length_penalty=length_penalty, **options)
        return options.check(max_beam_width=self.model.target_vocab_size).with_seed()

    def translate(
        self,
        texts,
        beam_width=1,
        max_length=None,
        length_penalty=0.0,
        batch_size=64,
        alignment=None,
        scores=False,
        target_prefix=None,
        full_vocabulary=False,
        placeholders=True,
        **options,
    ):
        """Translates a list of strings; returns a list of `Translation`.

        Args:
            texts: strings (or one string).
            beam_width: 1 is greedy (or sampling).
            max_length: most target tokens; default from `max_length_ratio` and
                `max_length_offset` and the batch's padded source length.
            length_penalty: GNMT alpha.
            batch_size: texts decoded together, in the given order.
            **options: other `DecodeOptions` fields (`n_best`, `max_length_ratio`,
                `max_length_offset`, `no_repeat_ngram`, `top_k`, `top_p`,
                `temperature`, `seed`). With `n_best`, each result has `nbest`.
                A sampled text's output depends on the seed and the text only.
            alignment: "hard" or "soft" sets each result's `alignment` (word alignment from
                the attention, `seq2seq_attn.alignment`); None (default) leaves it unset.
            scores: True sets each result's `scores` (per token, per word, and the
                sentence score normalised by length) from its `token_log_probs`, the
                model's log-prob of each output token over the whole vocabulary: the
                search's own where it decoded over the whole vocabulary, else one
                teacher-forced pass (a sentence decoded over its shortlist candidates has
                log-probs normalised over those).
            target_prefix: None, or one string per text (a string for one text): each
                output starts with it verbatim and the model continues it. It is tokenized
                with the target SentencePiece model, its pieces are forced, scored, and part
                of `tokens`; `max_length` counts from the end of the prefix. "" is no prefix.
            full_vocabulary: True decodes over the whole target vocabulary even where the
                translator has a shortlist (without one, every decode does). With one, a
                sentence's outputs use only its own candidates (sampling too), and `scores`
                remain the full model's log-probs of those tokens.
            placeholders: True (default) takes placeholders and markup (`%s`, `{name}`,
                `<b>`, `&amp;`, ...) out of each text and puts them back into its outputs
                by alignment, each exactly once (`seq2seq_attn.placeholders`; the report is
                each result's `placeholders`); False turns it off; a `Placeholders` (or
                a list of `Pattern`s) uses those patterns. A text without any is decoded
                exactly as with False.

        Raises:
            BadOption: a bad option value, in one line (a UserError and a ValueError).
            ValueError: an alignment other than "hard", "soft" or None.
        """
        if isinstance(texts, str):
            texts = [texts]
        protect = resolve_placeholders(placeholders)
        if protect is not None:
            kwargs = dict(
                beam_width=beam_width, max_length=max_length, length_penalty=length_penalty,
                batch_size=batch_size, alignment=alignment, scores=scores,
                full_vocabulary=full_vocabulary, placeholders=False, **options,
            )  # fmt: skip
            self.options(beam_width, length_penalty, **options)  # a bad option first
            check_max_length(max_length)
            return translate_protected(
                lambda some, prefixes: self.translate(some, target_prefix=prefixes, **kwargs),
                list(texts), protect, self._prefixes(target_prefix, len(texts)),
                options.get("n_best"), alignment, scores,
            )  # fmt: skip
        opts = self.options(beam_width, length_penalty, **options)
        check_max_length(max_length)
        if alignment is not None:
            check_kind(alignment)
        n_best = opts.n_best if "n_best" in options else None
        prefixes = self._prefixes(target_prefix, len(texts))
        shortlist = None if full_vocabulary else self.shortlist
        results = []
        for start in range(0, len(texts), batch_size):
            batch = self._translate_batch(
                texts[start : start + batch_size],
                opts,
                max_length,
                n_best,
                None if prefixes is None else prefixes[start : start + batch_size],
                shortlist,
            )
            if scores:
                self._add_token_log_probs(batch)
            results += [r.with_words(alignment, scores) for r in batch]
        return results

    @staticmethod
    def _prefixes(target_prefix, count):
        """`target_prefix` as a list of `count` strings, or None; BadOption otherwise."""
        if target_prefix is None:
            return None
        if isinstance(target_prefix, str):
            target_prefix = [target_prefix]
        target_prefix = list(target_prefix)
        if len(target_prefix) != count or not all(isinstance(p, str) for p in target_prefix):
            raise BadOption("target_prefix", target_prefix, f"one string per text ({count} texts)")
        return target_prefix

    def _add_token_log_probs(self, results):
        """Sets `token_log_probs` of `results` and their n-best lists where the search gave
        none (texts not decoded, batches decoded over shortlist candidates): the model's
        log-prob of each output token over the whole vocabulary, teacher-forced ([START]
        y_1 ... y_{n-1} in, y_1 ... y_n out), which is what the step-by-step search computes
        for the same tokens over the whole vocabulary."""
        hypotheses = [h for r in results for h in [r, *(r.nbest or [])]]
        # `generate` returns them (`token_log_probs`); texts that were not decoded (only
        # placeholders) are scored here
        hypotheses = [h for h in hypotheses if h.token_log_probs is None]
        if not hypotheses:
            return
        if not any(len(h.tokens) for h in hypotheses):  # max_length 0: nothing to score
            for h in hypotheses:
                h.token_log_probs = np.zeros([0], np.float32)
            return
        source = np.zeros([len(hypotheses), max(len(h.source_ids) for h in hypotheses)], np.int32)
        target = np.zeros([len(hypotheses), max(len(h.tokens) for h in hypotheses) + 1], np.int32)
        for row, h in enumerate(hypotheses):
            source[row, : len(h.source_ids)] = h.source_ids
            target[row, 0] = self.model.start_id
            target[row, 1 : len(h.tokens) + 1] = h.tokens
        lps = self._token_scorer()(tf.constant(source), tf.constant(target)).numpy()
        for row, h in enumerate(hypotheses):
            h.token_log_probs = lps[row, : len(h.tokens)]

    def _token_scorer(self):
        """A traced `(source_ids, [START] + tokens) -> log P(token)` `(batch, length)`."""
        if self._scorer is None:

            def score(source_ids, target):
                logits, _ = self.model.teacher_forced(source_ids, target[:, :-1])
                log_probs = tf.nn.log_softmax(logits)  # (batch, length, vocab)
                return tf.gather(log_probs, target[:, 1:], batch_dims=2)  # (batch, length)

            spec = tf.TensorSpec([None, None], tf.int32)
            self._scorer = tf.function(score, input_signature=[spec, spec], autograph=False)
        return self._scorer

    def _translate_batch(self, texts, options, max_length, n_best, prefixes=None, shortlist=None):
        ids = self.tokenizers.source.encode_batch(texts)  # (batch, source_len) int32
        if max_length is None:
            max_length = options.max_length(ids.shape[1])
        prefix_ids = self._prefix_ids(prefixes, len(texts))
        # Each sentence's candidates, and its prefix pieces, which are forced whatever they are.
        candidates = np.zeros([0, 0], bool)
        if shortlist is not None:
            candidates = shortlist.mask(ids)
            candidates[np.arange(len(ids))[:, None], prefix_ids] = True
            if candidates.all():  # every sentence may use every piece: nothing to select
                shortlist, candidates = None, np.zeros([0, 0], bool)
        generate = self._generator(options, prefix_ids.shape[1] > 0, shortlist is not None)
        out = generate(
            tf.constant(ids),
            tf.constant(max_length, tf.int32),
            tf.constant(options.seed or 0, tf.int64),
            tf.constant(prefix_ids),
            tf.constant(candidates),
        )
        out = {k: v.numpy() for k, v in out.items() if k != "beam_tokens"}
        results = []
        for row, text in enumerate(texts):
            source_ids = ids[row, : int((ids[row] != 0).sum())]
            result = Translation.from_search(
                out, row, self.model.end_id, len(source_ids), n_best=n_best
            )
            for one in [result, *(result.nbest or [])]:
                self._describe(one, text, source_ids, prefixes and prefixes[row])
                if shortlist is not None:  # normalised over the candidates only: rescored
                    one.token_log_probs = None  # over the whole vocabulary if asked
            results.append(result)
        return results

    def _prefix_ids(self, prefixes, count):
        """int32 `(count, P)`: each prefix's target pieces (no [START] or [END]), 0-padded."""
        rows = [self.tokenizers.target.processor.encode(p) for p in prefixes or []]
        out = np.zeros([count, max(map(len, rows), default=0)], np.int32)
        for row, pieces in enumerate(rows):
            out[row, : len(pieces)] = pieces
        return out

    def _describe(self, result, text, source_ids, prefix=None):
        source, target = self.tokenizers.source, self.tokenizers.target
        result.source, result.source_ids = text, source_ids
        result.text = with_prefix(target, result.tokens, prefix)
        result.source_tokens = source.id_to_token(source_ids)
        result.target_tokens = target.id_to_token(result.tokens)
