"""The request side of the server: limits, tokenization, queueing texts on the batcher, results.

Texts are tokenized in the request handler (SentencePiece, `seq2seq_attn.tokenizer`) and
decoded by one worker thread that owns the runtime (`batching.MicroBatcher`): texts of
concurrent requests with the same search options (`DecodeOptions`) share a batch.
"""

import asyncio
import json
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np

from seq2seq_attn.inference.runtime import ROWS
from seq2seq_attn.inference.search import with_one_best_list
from seq2seq_attn.interface import (
    BadOption,
    DecodeOptions,
    check_max_length,
    max_length_for,
    with_prefix,
)
from seq2seq_attn.placeholders import resolve as resolve_placeholders
from seq2seq_attn.placeholders import restore_result, verbatim
from seq2seq_attn.serving.batching import BatchError, MicroBatcher, QueueFullError, UnavailableError
from seq2seq_attn.serving.http_errors import ApiError
from seq2seq_attn.serving.schemas import state_limits, state_model
from seq2seq_attn.tokenizer import TokenizerPair


@dataclass(frozen=True)
class Limits:
    """What one request may ask for, and how the server protects itself; beyond it, a 4xx/5xx.

    Attributes:
        max_body_bytes: request body size (413 beyond).
        max_texts: texts per request.
        max_text_chars: characters per text.
        max_source_tokens: source tokens per text, [START] and [END] included (also capped
            by the export's static source length, if it has one).
        max_beam_width: largest beam (also capped by the target vocabulary size).
        max_output_length: largest `max_length`; the default per text is
            max_length_ratio * source tokens + max_length_offset (2 and 10 unless the request
            sets them), capped by this.
        request_timeout_s: a request waiting longer for its results gets a 503.
        max_queue: texts waiting for the worker; a request that would go beyond gets a 429.
        stall_timeout_s: `/healthz` fails when the worker spent longer than this on one batch
            while texts wait.
        retry_after_s: the `Retry-After` of 429 and 503 answers.
    """

    max_body_bytes: int = 64 * 1024
    max_texts: int = 32
    max_text_chars: int = 1000
    max_source_tokens: int = 128
    max_beam_width: int = 8
    max_output_length: int = 300
    request_timeout_s: float = 30.0
    max_queue: int = 1024
    stall_timeout_s: float = 30.0
    retry_after_s: int = 1


@dataclass(frozen=True)
class TokenScoredOptions(DecodeOptions):
    """The `DecodeOptions` of a request that asks for scores: its results must carry each
    token's log-prob (`token_log_probs`), which the host search returns and the export's
    whole-greedy graph does not. Being another class, these options are never equal to a
    plain `DecodeOptions` (dataclass equality compares classes), so such texts batch apart
    and `_single_graph_decodes` never sends them to the greedy graph."""


@dataclass(frozen=True)
class PrefixedOptions(TokenScoredOptions):
    """The options of texts whose outputs must start with `target_prefix` (target ids, no
    [START] or [END]): the batching key holds the prefix, so only texts with the same prefix
    and options share a batch, and the search (host only) forces it on every row. Being
    token-scored options too, they never go to the greedy graph, which has no prefix."""

    target_prefix: tuple = ()

    def search_kwargs(self):
        kwargs = super().search_kwargs()
        del kwargs["target_prefix"]
        return kwargs


class OverShortlist:
    """Marks the batching key of texts decoded over their shortlist candidates (the default
    where the export has a shortlist; `"full_vocabulary": true` turns it off): a subclass
    of their options' class (`shortlist_options`), so they batch apart from full-vocabulary
    texts. Each text decodes over its own candidates, so its answer does not depend on the
    texts batched with it (equal to decoding it alone)."""


_OVER_SHORTLIST = {}  # options class -> its marked subclass


def shortlist_options(options):
    """`options` (any `DecodeOptions` class) as the same values of an `OverShortlist` class."""
    cls = type(options)
    if cls not in _OVER_SHORTLIST:
        name = f"OverShortlist{cls.__name__}"
        _OVER_SHORTLIST[cls] = dataclass(frozen=True)(type(name, (cls, OverShortlist), {}))
    return _OVER_SHORTLIST[cls](**{f: getattr(options, f) for f in _field_names(options)})


def _unmarked(options):
    """The options of an `OverShortlist` key as their own class again."""
    base = type(options).__mro__[1]
    return base(**{f: getattr(options, f) for f in _field_names(options)})


def _field_names(options):
    return [f.name for f in fields(options)]


class TranslationService:
    """Tokenizes, checks the limits, queues texts on the batcher and waits for their results.

    Args:
        export_dir: the export directory (manifest and tokenizer).
        model: a runtime model with `.decode` (see `seq2seq_attn.inference.runtime`).
        limits: a `Limits`.
        max_batch_size: most texts decoded together.
        batch_timeout_ms: how long the first text waits for batch mates.
        metrics: a `seq2seq_attn.serving.metrics.ServerMetrics`.
    """

    def __init__(self, export_dir, model, limits, max_batch_size, batch_timeout_ms, metrics):
        export_dir = Path(export_dir)
        self.manifest = json.loads((export_dir / "manifest.json").read_text())
        tokenizers = TokenizerPair.load(export_dir / "tokenizer")
        self.source, self.target = tokenizers.source, tokenizers.target
        special = self.manifest["special_ids"]
        self.start_id, self.end_id = int(special["start"]), int(special["end"])
        self.static_length = self.manifest.get("max_source_length")
        self.limits = limits
        self.max_source_tokens = limits.max_source_tokens
        if self.static_length:
            self.max_source_tokens = min(self.max_source_tokens, int(self.static_length))
        self.max_beam_width = min(limits.max_beam_width, self.target.vocab_size)
        self.default_beam_width = min(
            int(self.manifest.get("beam_width") or 1), self.max_beam_width
        )
        self.model = model
        self.metrics = metrics
        self.draining = False  # set on SIGTERM: not ready, still answering
        self.batcher = MicroBatcher(
            self._decode,
            self.end_id,
            max_batch_size=max_batch_size,
            batch_timeout_ms=batch_timeout_ms,
            max_queue=limits.max_queue,
            pad_to=self.static_length,
            on_batch=metrics.observe_batch,
            on_error=metrics.observe_failed_batch,
            on_restart=metrics.worker_restarts.inc,
        )

    def _decode(self, ids, options, max_length):
        if not isinstance(options, DecodeOptions):
            options = DecodeOptions(beam_width=options)
        shortlisted = isinstance(options, OverShortlist)
        options = _unmarked(options) if shortlisted else options
        single = self._single_graph_decodes(ids, options, max_length)
        if single and (not shortlisted or len(ids) == 1):
            # One text's union is its own candidates: the graph computes them, no need to
            # ask `shortlist.onnx` first whether they are few enough.
            graph_over = {"shortlist": True} if shortlisted else {}
            return with_one_best_list(dict(self.model.greedy_graph(ids, **graph_over)))
        over = {}
        if shortlisted:
            over["shortlist"] = self.model.shortlist_columns(ids, options.beam_width)
        if single and ROWS not in over["shortlist"]:  # the graph computes its candidates again
            return with_one_best_list(dict(self.model.greedy_graph(ids, shortlist=True)))
        # The rest (options, beams, a batch whose union is large: `ROWS`, the full step masked
        # per text) run the host search.
        kwargs = options.search_kwargs()
        if isinstance(options, PrefixedOptions):
            kwargs["target_prefix"] = [list(options.target_prefix)] * len(ids)
        return self.model.decode(
            ids,
            self.start_id,
            self.end_id,
            beam_width=options.beam_width,
            max_length=max_length,
            **kwargs,
            **over,
        )

    def _single_graph_decodes(self, ids, options, max_length):
        """Whether the export's whole-greedy graph (`greedy.onnx`, the TFLite `greedy`
        signature) computes exactly this decode: default options (greedy, no penalty, no
        option) up to its own length rule, 2 x padded source length + 10, which is what
        the batcher asks for texts without a `max_length`. Those run the graph, faster at
        batch 1 than the host loop over the step graph (`benchmarks/tutorial_size.py`);
        `tests/test_greedy_graph.py` checks the two give the same tokens."""
        if not hasattr(self.model, "greedy_graph"):
            return False
        plain = replace(options, seed=None) == DecodeOptions()  # False for TokenScoredOptions
        return plain and max_length == max_length_for(np.shape(ids)[1])

    def state_limits(self, openapi, model_name, version):
        """`openapi` (the app's OpenAPI document) with this server's limits written in, and
        its one model name and version."""
        state_limits(
            openapi, self.limits, self.max_source_tokens, self.max_beam_width,
            self.default_beam_width,
        )  # fmt: skip
        return state_model(openapi, model_name, version)

    def health(self):
        """None if the decode worker runs and makes progress, else why not."""
        return self.batcher.health(self.limits.stall_timeout_s)

    def readiness(self):
        """None if the server takes new work, else why not."""
        if self.draining:
            return "the server is shutting down"
        return self.health()

    def _unavailable(self, code, message, status=503):
        self.metrics.rejected.labels(code).inc()
        return ApiError(status, code, message, {"Retry-After": str(self.limits.retry_after_s)})

    def check_texts(self, texts):
        if not texts:
            raise ApiError(422, "no_texts", "no texts given: send at least one")
        if len(texts) > self.limits.max_texts:
            raise ApiError(
                422,
                "too_many_texts",
                f"{len(texts)} texts in one request; the limit is {self.limits.max_texts}",
            )

    def encode(self, index, text):
        """Source ids of one text, or ApiError naming the text by its index."""
        if not text.strip():
            raise ApiError(422, "empty_text", f"text {index} is empty")
        if len(text) > self.limits.max_text_chars:
            raise ApiError(
                422,
                "text_too_long",
                f"text {index} has {len(text)} characters; "
                f"the limit is {self.limits.max_text_chars}",
            )
        ids = self.source.encode(text)
        if len(ids) > self.max_source_tokens:
            raise ApiError(
                422,
                "text_too_long",
                f"text {index} has {len(ids)} tokens with [START] and [END]; "
                f"the limit is {self.max_source_tokens}",
            )
        return ids

    def check_prefix(self, index, prefix):
        """ApiError 422 `text_too_long` when text `index`'s target prefix has more
        characters than a text may have."""
        if prefix is not None and len(prefix) > self.limits.max_text_chars:
            raise ApiError(
                422,
                "text_too_long",
                f"the target prefix of text {index} has {len(prefix)} characters; "
                f"the limit is {self.limits.max_text_chars}",
            )

    def resolve_options(self, beam_width=None, **options):
        """The checked `DecodeOptions` of a request, or ApiError 422 with the message of
        `DecodeOptions.check`: code `bad_beam_width` for a beam width out of 1 to
        `max_beam_width`, `bad_option` for any other bad value.

        Without `beam_width`: the export's default, or 1 when sampling. Sampling without a
        seed gets a fresh one (the response tells it).
        """
        given = {k: v for k, v in options.items() if v is not None}
        if beam_width is None:
            sampling = "top_k" in given or "top_p" in given
            beam_width = 1 if sampling else self.default_beam_width
        try:
            options = DecodeOptions(beam_width=beam_width, **given)
            return options.check(max_beam_width=self.max_beam_width).with_seed()
        except BadOption as error:
            out_of_range = error.option == "beam_width" and not error.conflict
            code = "bad_beam_width" if out_of_range else "bad_option"
            raise ApiError(422, code, str(error)) from None

    def resolve_max_length(self, max_length, ids, options=None):
        if max_length is None:
            source_length = self.static_length or len(ids)
            options = options or DecodeOptions()
            return min(max_length_for(source_length, options), self.limits.max_output_length)
        try:
            return check_max_length(max_length, 1, self.limits.max_output_length)
        except BadOption as error:
            raise ApiError(422, "bad_max_length", str(error)) from None

    async def translate(
        self,
        texts,
        beam_width=None,
        max_length=None,
        alignment=None,
        scores=False,
        target_prefixes=None,
        placeholders=True,
        n_best_asked=False,
        full_vocabulary=False,
        **options,
    ):
        """The `DecodeOptions` used, and a `Translation` per text (ids, score, attention,
        `text`, and the `nbest` list).

        Args:
            texts: list of str.
            beam_width: None for the export's default (1 when sampling).
            max_length: None for the options' ratio * source tokens + offset, capped.
            alignment: "hard" or "soft" sets each result's (and n-best entry's)
                `alignment`, see `Translation.with_words`; None leaves it unset.
            scores: True sets `token_log_probs` and `scores` (decoded by the host search).
            target_prefixes: None, or per text a str (or None): its outputs start with it
                verbatim (`interface.with_prefix`); "" and None are no prefix.
            placeholders: True takes placeholders and markup out of the texts and puts them
                back by alignment (`seq2seq_attn.placeholders`; each result's
                `placeholders` reports it); False decodes the texts as they are.
            n_best_asked: the request asked for `n_best` (a text that is only
                placeholders then gets a one-entry `nbest` list).
            full_vocabulary: False (default) decodes, where the export has a shortlist, each
                text over its own candidates (see `OverShortlist`); True over the whole
                target vocabulary, as do texts asking for `scores` or with a prefix (their
                log-probs and forced pieces are the whole model's).
            **options: the other `DecodeOptions` fields; None values are left out.

        Raises:
            ApiError: 4xx for a bad request; 429 when the queue is full; 503 when the worker
                is not running or the results take longer than `request_timeout_s`; 500
                when decoding the batch failed.
        """
        self.check_texts(texts)
        protect = resolve_placeholders(placeholders)
        masks = [protect.mask(text) if protect else None for text in texts]
        sources = [self._source_ids(i, text, masks[i]) for i, text in enumerate(texts)]
        prefixes = list(target_prefixes or [None] * len(texts))
        for index, prefix in enumerate(prefixes):
            self.check_prefix(index, prefix)
        options = self.resolve_options(beam_width, **options)
        todo = [i for i, ids in enumerate(sources) if ids is not None]
        lengths = [self.resolve_max_length(max_length, sources[i], options) for i in todo]
        keys = [self._decode_options(options, scores, prefixes[i]) for i in todo]
        if not full_vocabulary and getattr(self.model, "has_shortlist", False):
            keys = [k if isinstance(k, TokenScoredOptions) else shortlist_options(k) for k in keys]
        decoded = await self._decode_all([sources[i] for i in todo], keys, lengths)
        self.metrics.texts.labels(str(options.beam_width)).inc(len(texts))
        results = dict(zip(todo, decoded, strict=True))
        n_best = options.n_best if n_best_asked else None
        for i, masked in enumerate(masks):
            if i not in results:  # only placeholders: the text is its own translation
                results[i] = verbatim(masked, protect, prefixes[i], n_best)
                results[i].with_words(alignment, scores)
                continue
            result = results[i]
            result.source_ids = np.asarray(sources[i], np.int32)
            for one in [result, *(result.nbest or [])]:
                one.text = with_prefix(self.target, one.tokens, prefixes[i])
            if alignment is not None or scores or masked is not None and masked.items:
                self._describe(result)
            if alignment is not None or scores:
                result.with_words(alignment, scores)
            if masked is not None:
                restore_result(protect, masked, result, prefixes[i])
        return options, [results[i] for i in range(len(texts))]

    def _source_ids(self, index, text, masked):
        """The ids to decode for text `index` (its placeholders taken out, when `masked`
        has any), or None for a text that is only placeholders; ApiError as `encode`."""
        ids = self.encode(index, text)  # the limits hold for the text as sent
        if masked is None or not masked.items:
            return ids
        return None if masked.only_placeholders else self.source.encode(masked.text)

    def _decode_options(self, options, scores, prefix):
        """The batching key of one text: `options`, token-scored with `scores`, with the
        target ids of `prefix` (a str; None or "" for none)."""
        if prefix:
            ids = tuple(int(i) for i in self.target.processor.encode(prefix))
            return PrefixedOptions(**asdict(options), target_prefix=ids)
        return TokenScoredOptions(**asdict(options)) if scores else options

    def _describe(self, result):
        """Sets the piece strings of a result and its n-best entries (for their words)."""
        source_tokens = self.source.id_to_token(result.source_ids)
        for one in [result, *(result.nbest or [])]:
            one.source_tokens = source_tokens
            one.target_tokens = self.target.id_to_token(one.tokens)

    async def _decode_all(self, sources, options, lengths):
        """The results of `sources`, each decoded with its own `options` (texts with equal
        options go to the batcher together; all are queued or none)."""
        groups = {}  # options -> indices of its texts, in order
        for index, key in enumerate(options):
            groups.setdefault(key, []).append(index)
        futures = [None] * len(sources)
        try:
            for key, indices in groups.items():
                queued = self.batcher.submit_many(
                    [sources[i] for i in indices], key, [lengths[i] for i in indices]
                )
                for i, future in zip(indices, queued, strict=True):
                    futures[i] = future
        except QueueFullError as error:
            self.batcher.discard([f for f in futures if f is not None])
            raise self._unavailable("overloaded", str(error), status=429) from None
        except UnavailableError as error:
            self.batcher.discard([f for f in futures if f is not None])
            raise self._unavailable("unavailable", str(error)) from None
        try:
            # Not wait_for: cancelled (the client left), it leaves the gather's error unread.
            async with asyncio.timeout(self.limits.request_timeout_s):
                return await asyncio.gather(*(asyncio.wrap_future(f) for f in futures))
        except TimeoutError:
            message = f"no result within {self.limits.request_timeout_s} s"
            raise self._unavailable("timeout", message) from None
        except UnavailableError as error:  # the server stopped while the texts waited
            raise self._unavailable("unavailable", str(error)) from None
        except BatchError:  # the worker logged the cause once for the whole batch
            message = "internal error while decoding this request's batch"
            raise ApiError(500, "internal", message) from None
        finally:  # a no-op once done; else (timeout, client gone) the texts leave the queue
            self.batcher.discard(futures)
