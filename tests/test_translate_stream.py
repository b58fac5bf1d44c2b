"""Streaming translation: order, batching by length, empty lines, n-best format, atomic output."""

import io

import numpy as np
import pytest

from seq2seq_attn.errors import UserError
from seq2seq_attn.interface import DecodeOptions, Translation
from seq2seq_attn.translate_stream import (
    atomic_output,
    format_results,
    translate_io,
    translate_lines,
    translate_stream,
)


class FakeTranslator:
    """Upper-cases each text; records the batches it was given; n-best adds variants."""

    def __init__(self, fail_on=None):
        self.batches, self.fail_on = [], fail_on

    def options(self, beam_width=1, length_penalty=0.0, **options):
        try:
            return DecodeOptions(beam_width=beam_width, **options).check()
        except ValueError as err:
            raise UserError(str(err)) from None

    def translate(self, texts, beam_width=1, n_best=None, **options):
        self.options(beam_width, n_best=n_best or 1, **options)
        self.batches.append(list(texts))
        if self.fail_on in texts:
            raise RuntimeError("boom")
        results = []
        for text in texts:
            entries = [
                Translation(np.zeros(1, np.int32), -float(i + len(text)), None, text=text.upper())
                for i in range(n_best or 1)
            ]
            for i, entry in enumerate(entries[1:], start=1):
                entry.text += f" #{i}"
            entries[0].nbest = entries if n_best else None
            results.append(entries[0])
        return results


LINES = ["ccc", "a", "", "bbbbbb", "   ", "dd", "eeeee", "f"]


def test_order_is_restored_and_blank_lines_stay_blank():
    fake = FakeTranslator()
    out = io.StringIO()
    assert translate_stream(fake, (line + "\n" for line in LINES), out, batch_size=2) == 8
    assert out.getvalue().split("\n")[:-1] == [line.strip().upper() for line in LINES]
    sent = [text for batch in fake.batches for text in batch]
    assert sorted(sent) == sorted(line for line in LINES if line.strip())  # blanks not sent
    assert all(len(batch) <= 2 for batch in fake.batches)


def test_batches_are_sorted_by_length_within_a_buffer():
    fake = FakeTranslator()
    results = translate_lines(fake, LINES, batch_size=3)
    lengths = [len(text) for batch in fake.batches for text in batch]
    assert lengths == sorted(lengths)
    assert [r.text if r else None for r in results][:3] == ["CCC", "A", None]


def test_each_buffer_is_written_and_flushed_before_the_next_is_read():
    seen = []

    class Out(io.StringIO):
        def flush(self):
            seen.append(self.getvalue().count("\n"))

    def lines():
        for i, line in enumerate(LINES):
            # when line i is read, every full buffer (3 lines) before it has been flushed
            assert (seen[-1] if seen else 0) == 3 * (i // 3), (i, seen)
            yield line

    translate_stream(FakeTranslator(), lines(), Out(), batch_size=3, buffer_size=3)
    assert seen == [3, 6, 8]


def test_n_best_format():
    out = io.StringIO()
    translate_stream(FakeTranslator(), ["ab", "", "c"], out, beam_width=3, n_best=2)
    rows = [line.split("\t") for line in out.getvalue().splitlines()]
    assert rows == [
        ["0", "-2.000000", "AB"],
        ["0", "-3.000000", "AB #1"],
        ["1", "0.000000", ""],
        ["1", "0.000000", ""],
        ["2", "-1.000000", "C"],
        ["2", "-2.000000", "C #1"],
    ]


def test_format_keeps_one_line_per_translation():
    result = Translation(np.zeros(1, np.int32), -1.0, None, text="two\nlines")
    assert format_results(4, [result, None]) == ["two lines", ""]


def word_translation(text, nbest=None):
    """A `Translation` of "Hola mundo" for `text` ("Hello world"), with its pieces, attention
    (Hola <- Hello, mundo <- world) and token log-probs, words filled in as asked."""
    attention = [[0, 0.9, 0.1, 0], [0, 0.2, 0.7, 0.1], [0, 0, 0.1, 0.9]]
    return Translation(
        np.array([5, 6, 3], np.int32),
        -1.75,
        np.array(attention, np.float32),
        text="Hola mundo",
        source=text,
        source_tokens=["[START]", "Hello", "▁world", "[END]"],
        target_tokens=["Hola", "▁mundo", "[END]"],
        token_log_probs=np.array([-0.5, -1.0, -0.25], np.float32),
        nbest=nbest,
    )


def test_alignment_and_scores_columns():
    result = word_translation("Hello world").with_words("hard", scores=True)
    lines = format_results(0, [result, None], alignment="hard", scores=True)
    # mean over 3 tokens -1.75 / 3; words Hola -0.5, mundo -1.0 ([END] in no word)
    assert lines == ["Hola mundo\t0-0 1-1\t-0.583333\t-0.500000 -1.000000", "\t\t0.000000\t"]
    soft = format_results(0, [result.with_words("soft")], alignment="soft")
    assert soft == ["Hola mundo\t0.900,0.100 0.222,0.778"]  # .2/.9 and .7/.9
    result.nbest = [result, result]
    rows = format_results(3, [result, None], n_best=2, alignment="hard")
    assert rows == ["3\t-1.750000\tHola mundo\t0-0 1-1"] * 2 + ["4\t0.000000\t\t"] * 2


@pytest.mark.parametrize(
    "options, match",
    [
        (dict(beam_width=2, n_best=3), "n_best=3"),
        (dict(no_repeat_ngram=0), "no_repeat_ngram=0"),
        (dict(top_p=1.5), "top_p=1.5"),
        (dict(top_k=2, beam_width=3), "beam_width=3"),
    ],
)
def test_bad_options_fail_before_reading(options, match):
    def lines():
        raise AssertionError("read before the options were checked")
        yield  # pragma: no cover

    with pytest.raises(UserError, match=match):
        translate_stream(FakeTranslator(), lines(), io.StringIO(), **options)


def test_sampling_without_a_seed_uses_one_seed_for_the_whole_stream():
    seeds = []

    class Recording(FakeTranslator):
        def options(self, beam_width=1, length_penalty=0.0, **options):
            checked = super().options(beam_width, length_penalty, **options)
            return DecodeOptions(**{**checked.__dict__, "seed": checked.seed or 1234})

        def translate(self, texts, **options):
            seeds.append(options.get("seed"))
            return super().translate(texts, **options)

    translate_stream(Recording(), ["a", "bb", "ccc"], io.StringIO(), batch_size=1, top_k=3)
    assert seeds == [1234, 1234, 1234]


def test_output_file_appears_only_when_everything_is_done(tmp_path):
    source = tmp_path / "in.txt"
    source.write_text("one\n\nthree\n", encoding="utf-8")
    target = tmp_path / "out.txt"
    assert translate_io(FakeTranslator(), source, target) == 3
    assert target.read_text(encoding="utf-8") == "ONE\n\nTHREE\n"
    failing = tmp_path / "failed.txt"
    with pytest.raises(RuntimeError, match="boom"):
        translate_io(FakeTranslator(fail_on="three"), source, failing, batch_size=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt", "out.txt"]  # no .part


def test_missing_input_and_bad_output_directory_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="missing.txt does not exist"):
        translate_io(FakeTranslator(), tmp_path / "missing.txt", tmp_path / "o.txt")
    assert not (tmp_path / "o.txt").exists()
    with pytest.raises(UserError, match="not a directory"):
        with atomic_output(tmp_path / "nodir" / "o.txt"):
            pass
