"""Translating a stream of lines the way Marian and fairseq do: one line in, one line out.

Lines are read in buffers of a few batches; each buffer's non-empty lines are sorted by
length so that a batch pads little, translated batch by batch, put back in input order
and written (then flushed) before the next buffer is read. An empty (or blank) line gives
an empty line without running the model. With an n-best list each input gives K lines
`index<TAB>score<TAB>translation`, the index 0-based over the whole input, best first.

Word alignments and scores add tab-separated columns after the translation, as Marian's
`--alignment` does: `--alignment hard` one column, the Pharaoh pairs `0-0 1-2 2-1` (source
word index - output word index, words as split at spaces); `--alignment soft` one column,
per output word its source-word weights joined by commas, words separated by spaces;
`--scores` two columns, the sentence score (mean log-prob per output token, [END]
included) and the log-prob of each output word (sum of its pieces), space-separated. A
blank input line gives empty columns and a score of 0.

With `prefix_column` N (`translate --prefix-column N`), each line is tab-separated: the
first column is the source, column N (1-based, N >= 2) the target prefix that its
translation starts with verbatim (`Translator.translate`'s `target_prefix`; empty: none).

A line's translation does not depend on its batch mates except when it runs into the
maximum length: that is computed from the padded source length of its batch (as
`model.generate` does), and sorting by length keeps the padding small.

Example:
    >>> import io
    >>> out = io.StringIO()
    >>> translate_stream(translator, ["3 March 2021", ""], out)  # doctest: +SKIP
    2
    >>> out.getvalue()  # doctest: +SKIP
    '2021-03-03\\n\\n'
"""

import contextlib
import os
import sys
import tempfile
from pathlib import Path

from seq2seq_attn.errors import UserError

BATCH_SIZE = 32
BUFFER_BATCHES = 4  # lines sorted together: BATCH_SIZE * BUFFER_BATCHES


def _one_line(text):
    """A translation on one output line, whatever the detokenizer gave."""
    return " ".join(str(text).splitlines())


def _extra_columns(result, alignment, scores):
    """The alignment and scores columns of one `Translation` (None: a blank input)."""
    columns = []
    if alignment is not None:
        columns.append("" if result is None else result.alignment.format(alignment))
    if scores:
        if result is None:
            columns += ["0.000000", ""]
        else:
            columns.append(f"{result.scores.sentence:.6f}")
            columns.append(" ".join(f"{w:.6f}" for w in result.scores.words))
    return "".join("\t" + column for column in columns)


def format_results(first_index, results, n_best=None, alignment=None, scores=False):
    """Output lines for `results` (a `Translation` or None for an empty input line each).

    Without `n_best` one line per input; with it `n_best` lines per input,
    `index<TAB>score<TAB>translation` best first (an empty input: score 0, empty text).
    With `alignment` ("hard" or "soft") or `scores`, each line gets their columns after the
    translation (see the module docstring).
    """
    lines = []
    for index, result in enumerate(results, start=first_index):
        if n_best is None:
            text = "" if result is None else _one_line(result.text)
            lines.append(text + _extra_columns(result, alignment, scores))
            continue
        entries = [None] * n_best if result is None else result.nbest
        for entry in entries:
            score, text = (0.0, "") if entry is None else (entry.score, _one_line(entry.text))
            extra = _extra_columns(entry, alignment, scores)
            lines.append(f"{index}\t{score:.6f}\t{text}{extra}")
    return lines


def split_prefix_column(lines, column):
    """`(sources, prefixes)` of tab-separated `lines`: column 1 and column `column` (1-based);
    UserError for a line that has no such column."""
    sources, prefixes = [], []
    for line in lines:
        cells = line.split("\t")
        if len(cells) < column:
            raise UserError(f"--prefix-column {column}: this line has no column {column}: {line!r}")
        sources.append(cells[0])
        prefixes.append(cells[column - 1])
    return sources, prefixes


def translate_lines(translator, lines, batch_size=BATCH_SIZE, prefix_column=None, **options):
    """A `Translation` per line (None for a blank line), batched by length, in input order.

    Args:
        translator: a `seq2seq_attn.translator.Translator`.
        lines: list of str.
        batch_size: lines decoded together.
        prefix_column: None, or N >= 2: lines are tab-separated, column 1 the source and
            column N the target prefix.
        **options: `Translator.translate` keyword arguments (beam_width, n_best, ...).
    """
    prefixes = None
    if prefix_column is not None:
        lines, prefixes = split_prefix_column(lines, prefix_column)
    results = [None] * len(lines)
    todo = sorted((i for i, line in enumerate(lines) if line.strip()), key=lambda i: len(lines[i]))
    for start in range(0, len(todo), batch_size):
        rows = todo[start : start + batch_size]
        batch = [lines[i] for i in rows]
        if prefixes is not None:
            options["target_prefix"] = [prefixes[i] for i in rows]
        for i, result in zip(rows, translator.translate(batch, **options), strict=True):
            results[i] = result
    return results


def _decode_options(options):
    """`options` without the ones that are not decoding options (`alignment`, `scores`,
    `prefix_column`, `target_prefix`, `full_vocabulary`, `placeholders`)."""
    other = (
        "alignment", "scores", "prefix_column", "target_prefix", "full_vocabulary", "placeholders"
    )  # fmt: skip
    return {k: v for k, v in options.items() if k not in other}


def _buffers(lines, size):
    buffer = []
    for line in lines:
        buffer.append(line.rstrip("\r\n"))
        if len(buffer) >= size:
            yield buffer
            buffer = []
    if buffer:
        yield buffer


def translate_stream(
    translator, lines, out, batch_size=BATCH_SIZE, buffer_size=None, progress=None, **options
):
    """Translates `lines` (an iterable of str, e.g. a file) and writes to `out` as it goes.

    Args:
        translator: a `seq2seq_attn.translator.Translator`.
        lines: iterable of str; a trailing newline is dropped.
        out: a text file object; written and flushed once per buffer.
        batch_size: lines decoded together.
        buffer_size: lines sorted by length together (default 4 batches; 1 is interactive).
        progress: optional object with `update(n)` (a tqdm bar).
        **options: `Translator.translate` keyword arguments; `n_best` switches to the
            n-best format, `alignment` and `scores` add columns.

    Returns:
        the number of input lines.

    Raises:
        UserError: a bad option, before anything is read.
    """
    # check the options (and fix a sampling seed) once, before reading anything
    fixed = translator.options(**_decode_options(options))
    if fixed.sampling:
        options["seed"] = fixed.seed
    n_best = options.get("n_best")
    columns = dict(alignment=options.get("alignment"), scores=options.get("scores", False))
    count = 0
    for buffer in _buffers(lines, buffer_size or batch_size * BUFFER_BATCHES):
        results = translate_lines(translator, buffer, batch_size, **options)
        for line in format_results(count, results, n_best, **columns):
            out.write(line + "\n")
        out.flush()
        count += len(buffer)
        if progress is not None:
            progress.update(len(buffer))
    return count


@contextlib.contextmanager
def atomic_output(path):
    """A text file for writing that appears at `path` only if the block succeeds."""
    path = Path(path)
    if not path.parent.is_dir():
        raise UserError(f"cannot write {path}: {path.parent} is not a directory")
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            yield handle
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _count_lines(path):
    with open(path, "rb") as handle:
        return sum(1 for _ in handle)


def translate_io(translator, input_path=None, output_path=None, batch_size=BATCH_SIZE, **options):
    """`translate_stream` from a file or stdin to a file or stdout, with a progress bar on
    stderr when stderr is a terminal. The output file appears only when every line is done.

    Returns:
        the number of input lines.
    """
    translator.options(**_decode_options(options))  # a bad option fails before any file
    if input_path is not None and not Path(input_path).is_file():
        raise UserError(f"input file {input_path} does not exist")
    total = _count_lines(input_path) if input_path is not None else None
    interactive = input_path is None and sys.stdin.isatty()
    with contextlib.ExitStack() as stack:
        if input_path is None:
            lines = sys.stdin
        else:
            lines = stack.enter_context(open(input_path, encoding="utf-8"))
        out = sys.stdout if output_path is None else stack.enter_context(atomic_output(output_path))
        progress = _progress_bar(total)
        stack.callback(progress.close)
        return translate_stream(
            translator,
            lines,
            out,
            batch_size=batch_size,
            buffer_size=1 if interactive else None,
            progress=progress,
            **options,
        )


def _progress_bar(total):
    from tqdm import tqdm

    return tqdm(
        total=total,
        unit=" lines",
        file=sys.stderr,
        disable=not sys.stderr.isatty(),
        dynamic_ncols=True,
    )
