"""Bulk translation on Apache Beam: an export's runtime inside `RunInference`, TensorFlow-free.

`Translate(export_dir, options)` is a `PTransform` from `(key, line)` pairs (the line as
bytes or str, the key anything picklable, e.g. `(file index, line number)`) to two
PCollections: `translations`, `(key, [output lines])` (one line per input line, K with an
n-best list), and `dead_letters`, `(key, reason)`. Inside:

1. `_Prepare` decodes the bytes (strict UTF-8), takes the `column` of a TSV/CSV line,
   tokenizes it and checks its length: a blank line becomes an empty translation at once; a
   line that is not UTF-8, has no such column or has too many tokens becomes a dead letter.
2. Lines of similar length are brought together: keyed by their token-length bucket
   (`BUCKETS`) and a block of `GROUP_LINES` line numbers, grouped, and sorted by length, then
   `RunInference(KeyedModelHandler(ExportModelHandler(...)))` cuts them into batches with
   Beam's `BatchElements`, so a batch is not padded to the longest line of the file. The
   export is loaded once per worker process (`load_model`). (Beam's own length buckets,
   `batch_length_fn`, batch through a stateful DoFn, which the in-process runner does not
   spread over its workers: with 2 workers, 9,992 of 10,000 lines went to one.)
3. `ExportModelHandler.run_inference` decodes a batch with the host-side search
   (`OnnxModel` or `LiteRTModel`). Each line gets what decoding it alone gives (its own
   maximum length, by `inference.search.decode_batch`, as on the server): its output does
   not depend on its batch mates. If the batch fails, each line is retried alone; only the
   lines that fail alone become dead letters (Beam's own `with_exception_handling()` would
   drop the whole batch).
4. The lines are formatted by `seq2seq_attn.translate_stream.format_results`, the same code
   `seq2seq-attn translate` prints with, from a `Translation` built as the translator builds
   it: same text, same n-best lines, same alignment and score columns.

`seq2seq_attn.inference.bulk_job` reads the files, writes ordered shards and runs the job.

Example:
    >>> import apache_beam as beam  # doctest: +SKIP
    >>> with beam.Pipeline() as p:  # doctest: +SKIP
    ...     lines = p | beam.Create([((0, 1), b"3 March 2021"), ((0, 2), b"")])
    ...     out = lines | Translate("runs/dates/export", BulkOptions(beam_width=4))
    ...     out["translations"] | beam.Map(print)
"""

import bisect
import dataclasses
import json
import logging
import zlib
from pathlib import Path

import apache_beam as beam
import numpy as np
from apache_beam.ml.inference.base import (
    KeyedModelHandler,
    ModelHandler,
    PredictionResult,
    RunInference,
)

from seq2seq_attn.errors import UserError
from seq2seq_attn.inference.search import decode_batch
from seq2seq_attn.interface import DecodeOptions, with_prefix
from seq2seq_attn.tokenizer import TokenizerPair
from seq2seq_attn.translate_stream import format_results

RUNTIMES = ("onnx", "litert")
BUCKETS = [8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384]  # token-length bucket bounds
GROUP_LINES = 256  # lines sorted by length together: a block of line numbers per bucket
MAX_SOURCE_TOKENS = 256  # default limit per line, [START] and [END] included
BLANK, OK, DEAD = "blank", "ok", "dead"
logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class BulkOptions:
    """What to decode with and how to read a line; picklable, shared by every worker.

    Attributes:
        decode: the `DecodeOptions` (checked; a sampling seed fixed, see `resolve`).
        n_best_lines: print K lines per input (`translate --n-best`), not one.
        runtime: "onnx" (onnxruntime) or "litert".
        quantized: the int8 artifacts (`*_int8.onnx`, `model_int8.tflite`).
        column: None for plain text, else the 1-based column of a TSV/CSV line.
        delimiter: the column separator ("\\t" or ",").
        max_source_tokens: longer lines (with [START] and [END]) are dead letters.
        batch_size: most lines decoded together.
        alignment: None, "hard" or "soft": add the word-alignment column.
        scores: add the sentence and word score columns.
        shortlist: decode each line over its own lexical shortlist candidates (the
            export must have the shortlist graphs; the server's default): the shortlist
            step graph where the columns pay (`shortlist.columns_pay`: few rows a step,
            a union of candidates at most `shortlist.MAX_SHARE` of the vocabulary), else
            the full step masked per line.
    """

    decode: DecodeOptions = DecodeOptions()
    n_best_lines: bool = False
    runtime: str = "onnx"
    quantized: bool = False
    column: int | None = None
    delimiter: str = "\t"
    max_source_tokens: int = MAX_SOURCE_TOKENS
    batch_size: int = 32
    alignment: str | None = None
    scores: bool = False
    shortlist: bool = False


def resolve(decode_kwargs, **options):
    """`BulkOptions` from `translate`'s decoding keyword arguments (`beam_width`, `n_best`,
    `top_k`, ...) and the other fields: checked once, before any worker starts, with the
    sampling seed fixed so every worker draws the same noise (`BadOption` for a bad value)."""
    decode = DecodeOptions(**decode_kwargs).check().with_seed()
    return BulkOptions(decode=decode, n_best_lines="n_best" in decode_kwargs, **options)


def empty_lines(index, options):
    """The output lines of an input line with nothing to translate (blank, or dead-lettered):
    what `translate` prints for a blank line, so that the output stays parallel."""
    n_best = options.decode.n_best if options.n_best_lines else None
    columns = dict(alignment=options.alignment, scores=options.scores)
    return format_results(index, [None], n_best, **columns)


def _by_length(element):
    """`(key, (index, text, ids))` -> `((length bucket, block), element)`: the block is the
    key but for its line number's `GROUP_LINES` block when the key is a tuple ending in one."""
    key, (_, _, ids) = element
    if isinstance(key, tuple) and key and isinstance(key[-1], int):
        block = (*key[:-1], key[-1] // GROUP_LINES)
    else:
        block = zlib.crc32(repr(key).encode("utf-8")) % 64
    return (bisect.bisect_right(BUCKETS, len(ids)), block), element


def _sorted_by_length(group):
    """A group's elements, shortest first (ties in input order)."""
    _, elements = group
    return sorted(elements, key=lambda element: (len(element[1][2]), element[1][0]))


class LoadedExport:
    """One worker's export: the runtime, the tokenizers and the special ids."""

    def __init__(self, export_dir, options):
        from seq2seq_attn.inference.runtime import LiteRTModel, OnnxModel

        export_dir = Path(export_dir)
        manifest = json.loads((export_dir / "manifest.json").read_text())
        special = manifest["special_ids"]
        self.start_id, self.end_id = int(special["start"]), int(special["end"])
        self.static_length = manifest.get("max_source_length")
        pair = TokenizerPair.load(export_dir / "tokenizer")
        self.source, self.target = pair.source, pair.target
        if options.runtime == "onnx":
            self.model = OnnxModel(export_dir, quantized=options.quantized)
        else:
            name = "model_int8.tflite" if options.quantized else "model.tflite"
            self.model = LiteRTModel(export_dir / name, threads=1)
        if options.shortlist and not self.model.has_shortlist:
            raise UserError(
                f"--shortlist: {export_dir} has no shortlist graphs (export a run that has "
                f"shortlist.npz: seq2seq-attn shortlist RUN_DIR, then export it again)"
            )
        self.options = options

    def _decode(self, ids, options, max_length):
        """`decode_batch`'s `decode_fn`: the padded `ids` decoded with `options`."""
        return self.model.decode(
            ids, self.start_id, self.end_id, options.beam_width, max_length=max_length,
            shortlist=self.options.shortlist
            and self.model.shortlist_columns(ids, options.beam_width) or False,
            **options.search_kwargs(),
        )  # fmt: skip

    def translate(self, rows):
        """A `Translation` per id list, each what decoding it alone gives (`decode_batch`,
        the server's rule: the batch runs to the longest own maximum length; a row that had
        not ended within its own is decoded again alone)."""
        opts = self.options.decode
        limits = [opts.max_length(self.static_length or len(r)) for r in rows]
        results = decode_batch(
            self._decode, rows, opts, limits, self.end_id, pad_to=self.static_length
        )
        if not self.options.n_best_lines:
            for result in results:
                result.nbest = None
        return results

    def describe(self, result, text, row):
        """Sets the texts and pieces of a result and its n-best list, as the translator does;
        then its word alignment and scores when asked for."""
        for one in [result, *(result.nbest or [])]:
            one.source, one.source_ids = text, np.asarray(row, np.int32)
            one.text = with_prefix(self.target, one.tokens, None)
            one.source_tokens = self.source.id_to_token(row)
            one.target_tokens = self.target.id_to_token(one.tokens)
        return result.with_words(self.options.alignment, self.options.scores)

    def lines(self, examples):
        """The output lines of each `(index, text, ids)` example (raises if decoding fails)."""
        results = self.translate([ids for _, _, ids in examples])
        return [
            self.format(index, self.describe(result, text, ids))
            for (index, text, ids), result in zip(examples, results, strict=True)
        ]

    def format(self, index, result):
        n_best = self.options.decode.n_best if self.options.n_best_lines else None
        columns = dict(alignment=self.options.alignment, scores=self.options.scores)
        return format_results(index, [result], n_best, **columns)


@dataclasses.dataclass(frozen=True)
class Failed:
    """The inference of a line that failed when decoded alone: why."""

    reason: str


def _reason(error):
    text = str(error).splitlines()[0] if str(error) else ""
    return f"runtime error: {type(error).__name__}: {text}".rstrip(": ")


class _NoMemoryNotice(logging.Filter):
    """Drops one notice Beam 2.77's RunInference logs for every batch when torch is not
    installed: `ml/inference/base.py` imports `resource` in the same `try` as its torch-only
    `ModelManager`, so without torch it has no `resource` and warns "Resource module is not
    available for current platform" (on Linux, where it is). Nothing else is filtered."""

    def filter(self, record):
        return not record.getMessage().startswith("Resource module is not available")


def _quiet_memory_notice():
    root = logging.getLogger()
    if not any(isinstance(f, _NoMemoryNotice) for f in root.filters):
        root.addFilter(_NoMemoryNotice())


_quiet_memory_notice()  # at import: a worker imports this module before RunInference's setup


class ExportModelHandler(ModelHandler):
    """Beam's `ModelHandler` for an export: `load_model` once per worker process,
    `run_inference` on a batch of `(index, text, ids)` examples (index 0-based, for the n-best
    lines), one `PredictionResult` per example whose `inference` is its output lines or a
    `Failed`.

    Args:
        export_dir: a local export directory (`seq2seq-attn export`).
        options: `BulkOptions`.
        loader: what `load_model` builds, `loader(export_dir, options)`; default
            `LoadedExport` (a subclass can wrap the runtime, e.g. to inject a fault in tests).
    """

    def __init__(self, export_dir, options, loader=None):
        super().__init__(min_batch_size=options.batch_size, max_batch_size=options.batch_size)
        self.export_dir, self.options = str(export_dir), options
        self.loader = loader or LoadedExport

    def load_model(self):
        _quiet_memory_notice()
        return self.loader(self.export_dir, self.options)

    def run_inference(self, batch, model, inference_args=None):
        try:
            outputs = model.lines(batch)
        except Exception as error:  # retry line by line: only the bad line fails
            logger.info("a batch of %d failed (%s); retrying line by line", len(batch), error)
            outputs = [self._alone(model, example) for example in batch]
        return [PredictionResult(e, o) for e, o in zip(batch, outputs, strict=True)]

    @staticmethod
    def _alone(model, example):
        try:
            return model.lines([example])[0]
        except Exception as error:
            return Failed(_reason(error))

    def get_metrics_namespace(self):
        return "seq2seq_attn"


def _column(text, options):
    """The text of the chosen column of a TSV/CSV line, or None when it has none."""
    if options.column is None:
        return text
    if options.delimiter == ",":
        import csv

        cells = next(csv.reader([text]), [])
    else:
        cells = text.split(options.delimiter)
    return cells[options.column - 1] if len(cells) >= options.column else None


class _Prepare(beam.DoFn):
    """`(key, line)` -> tagged `(key, (index, text, ids))` to translate, `(key, [lines])` for a
    blank line, or `(key, reason)` for a dead letter. The key's last item is the 1-based line
    number (the n-best index is that minus 1)."""

    def __init__(self, export_dir, options):
        self.export_dir, self.options = str(export_dir), options

    def setup(self):
        self.blank = beam.metrics.Metrics.counter("seq2seq_attn", "blank")
        self.source = TokenizerPair.load(Path(self.export_dir) / "tokenizer").source
        manifest = json.loads((Path(self.export_dir) / "manifest.json").read_text())
        static = manifest.get("max_source_length")
        self.limit = min(self.options.max_source_tokens, static or self.options.max_source_tokens)

    def process(self, element):
        key, line = element
        index = key[-1] - 1 if isinstance(key, tuple) else 0
        text, reason = self._text(line)
        if reason is not None:
            yield beam.pvalue.TaggedOutput(DEAD, (key, reason))
        elif not text.strip():
            self.blank.inc()
            yield beam.pvalue.TaggedOutput(BLANK, (key, empty_lines(index, self.options)))
        else:
            ids = self.source.encode(text)
            if len(ids) > self.limit:
                why = (
                    f"too long: {len(ids)} tokens with [START] and [END], the limit is {self.limit}"
                )
                yield beam.pvalue.TaggedOutput(DEAD, (key, why))
            else:
                yield (key, (index, text, ids))

    def _text(self, line):
        """`(text, None)`, or `(None, reason)`."""
        if isinstance(line, bytes):
            try:
                line = line.decode("utf-8")
            except UnicodeDecodeError as error:
                return None, f"not valid UTF-8: byte {line[error.start]:#04x} at {error.start}"
        text = _column(line, self.options)
        if text is None:
            return None, f"no column {self.options.column}"
        return text, None


def _split(element):
    """A RunInference result -> `(key, lines)`, or a tagged dead letter `(key, reason)`."""
    key, result = element
    if isinstance(result.inference, Failed):
        yield beam.pvalue.TaggedOutput(DEAD, (key, result.inference.reason))
    else:
        yield (key, result.inference)


class Translate(beam.PTransform):
    """`(key, line)` -> `{"translations": (key, [lines]), "dead_letters": (key, reason)}`.

    The key is passed through untouched; with `--n-best` lines, the index they print is the
    key's last item minus 1 when the key is a tuple (the 1-based line number), else 0.

    Args:
        export_dir: a local export directory.
        options: `BulkOptions` (see `resolve`).
        loader: see `ExportModelHandler`.
    """

    def __init__(self, export_dir, options=None, loader=None):
        super().__init__()
        self.export_dir, self.options = str(export_dir), options or BulkOptions()
        self.loader = loader

    def expand(self, pcoll):
        prepared = pcoll | "Prepare" >> beam.ParDo(
            _Prepare(self.export_dir, self.options)
        ).with_outputs(BLANK, DEAD, main=OK)
        model_handler = ExportModelHandler(self.export_dir, self.options, self.loader)
        handler = KeyedModelHandler(model_handler)
        decoded = (
            prepared[OK]
            | "ByLength" >> beam.Map(_by_length)
            | "GroupByLength" >> beam.GroupByKey()
            | "SortByLength" >> beam.FlatMap(_sorted_by_length)
            | "RunInference" >> RunInference(handler)
            | "Split" >> beam.FlatMap(_split).with_outputs(DEAD, main=OK)
        )
        translations = (decoded[OK], prepared[BLANK]) | "Translations" >> beam.Flatten()
        dead = (decoded[DEAD], prepared[DEAD]) | "DeadLetters" >> beam.Flatten()
        return {"translations": translations, "dead_letters": dead}
