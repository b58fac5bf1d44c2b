"""`seq2seq-attn translate-corpus`: a whole Beam job from files to ordered, sharded output.

    files (a glob, plain or .gz) --read, number--> ((file index, line number), bytes)
      --Reshuffle--> Translate (seq2seq_attn.inference.bulk) --> translations, dead letters
      --group by (file, (line - 1) // lines_per_shard), sort--> shard files, one dead-letter file

What it writes, under the output PREFIX (`out/es` writes `out/es-00000-of-00003` ...):

- `PREFIX-SSSSS-of-NNNNN`: the translations, one output line per input line (K with an
  n-best list; an empty line stays empty; a dead-lettered line gives an empty line, so the
  lines stay parallel to the input). Shards hold `lines_per_shard` lines of one file; their
  concatenation in shard order is the input order (files sorted by path). With
  `line_numbers`, each line starts with `file<TAB>line number<TAB>`.
- `PREFIX-dead-letters.tsv`: `file<TAB>line number<TAB>reason`, in input order (empty when
  every line translated).

Everything is written under a temporary folder beside the prefix first and renamed into
place only when the pipeline has succeeded (the older shards of the prefix removed then), so
a failed job leaves nothing under the final names, and a job run twice writes the same bytes.

The runner defaults to Beam's in-process `FnApiRunner` (no download at run time, unlike
Beam's default, which tries to fetch the Prism runner first); other pipeline options
(`--runner DataflowRunner --project ...`) pass through unchanged.
"""

import dataclasses
import json
import logging
import time
import uuid
from pathlib import Path

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from seq2seq_attn.errors import UserError
from seq2seq_attn.inference.bulk import DEAD, LoadedExport, Translate, empty_lines

DEFAULT_RUNNER = "FnApiRunner"
LINES_PER_SHARD = 10_000
DEAD_LETTERS = "-dead-letters.tsv"
SHARD = "-{index:05d}-of-{count:05d}"


@dataclasses.dataclass
class Summary:
    """What a job did: input lines, translated, blank (empty in, empty out), dead-lettered,
    wall seconds (Beam's start-up included), and the files written."""

    lines: int
    translated: int
    blank: int
    dead_lettered: int
    seconds: float
    shards: list
    dead_letters: str

    def line(self):
        rate = self.lines / self.seconds if self.seconds else 0.0
        return (
            f"{self.lines} lines: {self.translated} translated, {self.blank} empty, "
            f"{self.dead_lettered} dead-lettered (see {self.dead_letters}); {len(self.shards)} "
            f"shards; {self.seconds:.1f} s, {rate:.1f} lines/s"
        )


def check_export(export_dir, options):
    """UserError unless `export_dir` is an export the runtime of `options` loads (each
    artifact checked against `manifest.json`); returns the loaded export."""
    path = Path(export_dir)
    if not path.is_dir():
        raise UserError(f"export directory not found: {export_dir}")
    for needed in ("manifest.json", "tokenizer"):
        if not (path / needed).exists():
            raise UserError(
                f"{export_dir} has no {needed}: is it a `seq2seq-attn export` directory?"
            )
    try:
        return LoadedExport(path, options)
    except UserError:
        raise
    except Exception as error:  # a missing graph, a foreign file: the runtime's own error
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UserError(f"cannot load {export_dir} on {options.runtime}: {first}") from None


def check_prefix(prefix):
    """Creates the folder of a local output prefix (as `translate --output` and Beam's own
    sinks do); UserError when it cannot be a folder (a file has its name, no permission)."""
    if "://" in prefix:
        return
    folder = Path(prefix).parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise UserError(f"cannot write {prefix}-*: {folder} is not a directory") from None
    except OSError as error:
        raise UserError(f"cannot write {prefix}-*: {error.strerror}: {folder}") from None


def match_inputs(pattern):
    """The files a glob (or one path) matches, sorted; UserError when none."""
    try:
        found = FileSystems.match([pattern])[0].metadata_list
    except Exception as error:  # Beam raises BeamIOError for a pattern it cannot list
        raise UserError(f"--input {pattern}: {str(error).splitlines()[0]}") from None
    paths = sorted(m.path for m in found)
    if not paths:
        raise UserError(f"--input {pattern} matches no file")
    return paths


def read_numbered_lines(item):
    """`(file index, path)` -> `((file index, line number from 1), line bytes)`: lines end at
    b"\\n" (a trailing b"\\r" dropped); gzip by the `.gz` suffix."""
    index, path = item
    with FileSystems.open(path) as handle:
        number = 0
        for number, raw in enumerate(iter(handle.readline, b""), start=1):
            yield (index, number), raw.rstrip(b"\n").rstrip(b"\r")
    beam.metrics.Metrics.counter("seq2seq_attn", "lines").inc(number)


class _WriteShard(beam.DoFn):
    """`(shard key, [(line number, lines)])` -> one temporary shard file, lines in order."""

    def __init__(self, temp_dir, paths, line_numbers):
        self.temp_dir, self.paths, self.line_numbers = temp_dir, paths, line_numbers

    def process(self, element):
        (file_index, chunk), rows = element
        rows = sorted(rows)
        path = f"{self.temp_dir}/shard-{file_index:05d}-{chunk:08d}"
        prefix = ""
        with FileSystems.create(path) as out:
            for number, lines in rows:
                if self.line_numbers:
                    prefix = f"{self.paths[file_index]}\t{number}\t"
                out.write("".join(f"{prefix}{line}\n" for line in lines).encode("utf-8"))
        yield path


def _count(name):
    counter = beam.metrics.Metrics.counter("seq2seq_attn", name)

    def inc(element):
        counter.inc()
        return element

    return inc


def build(pipeline, paths, export_dir, options, temp_dir, line_numbers, lines_per_shard, loader):
    """Adds the job's transforms to `pipeline`: read `paths`, translate, write the temporary
    shards and dead letters under `temp_dir`."""
    lines = (
        pipeline
        | "Files" >> beam.Create(list(enumerate(paths)))
        | "Read" >> beam.FlatMap(read_numbered_lines)
        | "Spread" >> beam.Reshuffle()
    )
    out = lines | "Translate" >> Translate(export_dir, options, loader)
    dead_lines = out["dead_letters"] | "DeadLines" >> beam.Map(
        lambda kv: (kv[0], empty_lines(kv[0][1] - 1, options))
    )
    _ = (
        (out["translations"], dead_lines)
        | "AllLines" >> beam.Flatten()
        | "ByShard"
        >> beam.Map(
            lambda kv: ((kv[0][0], (kv[0][1] - 1) // lines_per_shard), (kv[0][1], kv[1]))
        )  # fmt: skip
        | "GroupShards" >> beam.GroupByKey()
        | "WriteShards" >> beam.ParDo(_WriteShard(temp_dir, paths, line_numbers))
    )
    _ = (
        out["dead_letters"]
        | "CountDead" >> beam.Map(_count("dead_lettered"))
        | "Dead" >> beam.Map(lambda kv: (kv[0], f"{paths[kv[0][0]]}\t{kv[0][1]}\t{kv[1]}"))
        | "DeadList" >> beam.combiners.ToList()
        | "WriteDead" >> beam.Map(_write_dead_letters, f"{temp_dir}/{DEAD}")
    )


def _write_dead_letters(rows, path):
    rows = sorted(rows)
    with FileSystems.create(path) as out:
        out.write("".join(f"{text}\n" for _, text in rows).encode("utf-8"))
    return path


def pipeline_options(pipeline_args, workers=None):
    """Beam's options: the in-process runner unless `--runner` is given; `workers` workers
    (`--direct_num_workers`) for it, threads unless `--direct_running_mode` says otherwise;
    worker logs at WARNING. UserError for an option Beam does not know either.

    Threads, not processes: onnxruntime and LiteRT release the GIL while they run, and on
    3,000 Bible verses with 2 workers on 2 cores threads took 6.8-7.4 s against 8.5-8.6 s
    for `multi_processing` (same bytes out), whose worker processes also print ~45 lines of
    their own INFO logs that our options do not reach."""
    args = list(pipeline_args or [])
    if not any(a == "--runner" or a.startswith("--runner=") for a in args):
        args.append(f"--runner={DEFAULT_RUNNER}")
    if workers is not None:
        args += [f"--direct_num_workers={workers}"]
        if workers > 1 and not any(a.startswith("--direct_running_mode") for a in args):
            args += ["--direct_running_mode=multi_threading"]
    if not any(a.startswith("--default_sdk_harness_log_level") for a in args):
        args.append("--default_sdk_harness_log_level=WARNING")
    options = PipelineOptions(args)
    unknown = set(options.get_all_options(retain_unknown_options=True))
    unknown -= set(PipelineOptions([]).get_all_options())  # every option Beam knows
    if unknown:  # Beam would discard them with a warning: a typo must not pass silently
        names = ", ".join(f"--{name}" for name in sorted(unknown))
        raise UserError(f"unknown option {names}: neither translate-corpus nor Beam knows it")
    return options


def _counters(result):
    counts = {}
    for row in result.metrics().query()["counters"]:
        name = row.key.metric.name
        if row.key.metric.namespace == "seq2seq_attn":
            counts[name] = counts.get(name, 0) + (row.committed or row.attempted or 0)
    return counts


def commit(temp_dir, prefix):
    """Renames the temporary shards and dead letters to their final names (after removing
    the prefix's older shards); returns `(shard paths, dead-letter path)`."""
    temp_shards = sorted(
        m.path for m in FileSystems.match([f"{temp_dir}/shard-*"])[0].metadata_list
    )
    if not temp_shards:  # no input line: one empty shard, so the output exists
        temp_shards = [f"{temp_dir}/shard-empty"]
        FileSystems.create(temp_shards[0]).close()
    old = FileSystems.match([f"{prefix}-?????-of-?????"])[0].metadata_list
    if old:
        FileSystems.delete([m.path for m in old])
    final = [
        prefix + SHARD.format(index=i, count=len(temp_shards)) for i in range(len(temp_shards))
    ]
    dead = prefix + DEAD_LETTERS
    FileSystems.rename([*temp_shards, f"{temp_dir}/{DEAD}"], [*final, dead])
    return final, dead


def run_job(
    export_dir, pattern, prefix, options, pipeline_args=(), workers=None, line_numbers=False,
    lines_per_shard=LINES_PER_SHARD,
    loader=None,
):  # fmt: skip
    """Translates every line of the files `pattern` matches into shards under `prefix`.

    Args:
        export_dir: a local export directory (`seq2seq-attn export`).
        pattern: a file or a glob (`data/*.txt.gz`).
        prefix: the output prefix (its folder must exist).
        options: `seq2seq_attn.inference.bulk.BulkOptions`.
        pipeline_args: Beam pipeline options as command-line words.
        workers: worker processes of the in-process runner (None: Beam's default, 1).
        line_numbers: start each output line with the source file and line number.
        lines_per_shard: input lines per output shard (a shard never spans two files).
        loader: see `seq2seq_attn.inference.bulk.ExportModelHandler`.

    Returns:
        a `Summary`.
    """
    prefix = str(prefix)
    check_prefix(prefix)
    check_export(export_dir, options)
    paths = match_inputs(str(pattern))
    temp_dir = f"{prefix}.incomplete-{uuid.uuid4().hex[:12]}"
    FileSystems.mkdirs(temp_dir)
    started = time.perf_counter()
    try:
        with beam.Pipeline(options=pipeline_options(pipeline_args, workers)) as pipeline:
            build(
                pipeline, paths, export_dir, options, temp_dir, line_numbers, lines_per_shard,
                loader,
            )  # fmt: skip
        counts = _counters(pipeline.result)
        shards, dead = commit(temp_dir, prefix)
    finally:
        if FileSystems.exists(temp_dir):
            FileSystems.delete([temp_dir])
    lines, dead_count = counts.get("lines", 0), counts.get("dead_lettered", 0)
    blank = counts.get("blank", 0)
    seconds = time.perf_counter() - started
    logging.getLogger(__name__).info("job counters: %s", json.dumps(counts))
    return Summary(lines, lines - dead_count - blank, blank, dead_count, seconds, shards, dead)
