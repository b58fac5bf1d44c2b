"""`translate-corpus` on Apache Beam (seq2seq_attn.inference.bulk, bulk_job) on the tiny export:
every good line equals `translate --input`, broken lines go to the dead letters with their
line numbers and take no batch mate with them, the output is deterministic and parallel to the
input, a failed job leaves nothing under the final names, and the job imports no TensorFlow."""

import gzip
import random
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("apache_beam")

from seq2seq_attn.cli import main  # noqa: E402
from seq2seq_attn.errors import UserError  # noqa: E402
from seq2seq_attn.inference.bulk import LoadedExport, resolve  # noqa: E402
from seq2seq_attn.inference.bulk_job import run_job  # noqa: E402

MONTHS = ["January", "March", "July", "December", "février", "März", "ene"]
DAYS = ["Monday", "Tuesday", "samedi", "Dienstag"]
POISON = "poison 1 January 2000"  # the injected runtime fault fails any batch holding it


def _date(rng):
    day, month, year = rng.randint(1, 28), rng.choice(MONTHS), rng.randint(1900, 2040)
    forms = [
        f"{day} {month} {year}",
        f"{rng.choice(DAYS)}, {month} {day}, {year}",
        f"{day:02d}/{rng.randint(1, 12):02d}/{year}",
        f"{rng.choice(DAYS)}, {day}. {month} {year}, {rng.randint(0, 23)}h",
    ]
    return rng.choice(forms)


def corpus(n=300, seed=0):
    """`(raw lines, {line number: expected reason prefix})`: mixed-length dates with empty
    lines, invalid UTF-8 and over-long lines mixed in."""
    rng = random.Random(seed)
    lines, broken = [], {}
    for number in range(1, n + 1):
        r = rng.random()
        if r < 0.05:
            lines.append(b"" if r < 0.03 else b"   ")
        elif r < 0.08:
            lines.append(b"3 March \xff\xfe 2021")
            broken[number] = "not valid UTF-8"
        elif r < 0.10:
            lines.append(" ".join(_date(rng) for _ in range(30)).encode())
            broken[number] = "too long"
        else:
            lines.append(_date(rng).encode())
    return lines, broken


def _read_shards(prefix):
    shards = sorted(Path(prefix).parent.glob(Path(prefix).name + "-?????-of-?????"))
    return "".join(p.read_text(encoding="utf-8") for p in shards), shards


def _dead_letters(prefix):
    text = Path(f"{prefix}-dead-letters.tsv").read_text(encoding="utf-8")
    return [line.split("\t") for line in text.splitlines()]


def _translate_input(run, lines, tmp_path, *options):
    """What `seq2seq-attn translate --input` writes for these (good) lines, over the whole
    target vocabulary as the export decodes (not the run's shortlist)."""
    source, out = tmp_path / "good.txt", tmp_path / "good.out"
    source.write_bytes(b"".join(line + b"\n" for line in lines))
    argv = ["translate", "--run-dir", str(run), "--input", str(source), "--output", str(out)]
    argv.append("--full-vocabulary")
    assert main([*argv, *options, "-q"]) == 0
    return out.read_text(encoding="utf-8").splitlines()


@pytest.mark.parametrize(
    "options, decode",
    [
        ((), {"beam_width": 1}),
        (("--beam", "4", "--n-best", "2"), {"beam_width": 4, "n_best": 2}),
    ],
    ids=["greedy", "beam4-nbest2"],
)
def test_good_lines_equal_translate_input(tiny_run, tiny_export, tmp_path, options, decode):
    lines, broken = corpus()
    (tmp_path / "in.txt").write_bytes(b"\n".join(lines) + b"\n")
    prefix = tmp_path / "out" / "es"
    prefix.parent.mkdir()
    summary = run_job(
        tiny_export[0], tmp_path / "in.txt", prefix, resolve(decode, batch_size=16),
        lines_per_shard=64,
    )  # fmt: skip
    blank = sum(not line.strip() for line in lines)
    assert (summary.lines, summary.dead_lettered, summary.blank) == (300, len(broken), blank)
    assert summary.translated == 300 - len(broken) - blank
    text, shards = _read_shards(prefix)
    assert len(shards) == 5  # 300 lines, 64 a shard
    k = decode.get("n_best", 1)
    got = text.splitlines()
    assert len(got) == 300 * k  # one output line per input line (K with an n-best list)
    good = [n for n in range(1, 301) if n not in broken]
    expected = _translate_input(tiny_run, [lines[n - 1] for n in good], tmp_path, *options)
    mine = [got[(n - 1) * k + j] for n in good for j in range(k)]
    if k > 1:  # n-best lines: `index<TAB>score<TAB>text`; the index counts the input lines
        assert [m.split("\t")[0] for m in mine[::k]] == [str(n - 1) for n in good]
        mine = [m.split("\t", 2)[2] for m in mine]
        expected = [e.split("\t", 2)[2] for e in expected]
    assert mine == expected
    assert any(line.strip() for line in mine)  # not trivially empty
    for n in broken:  # a dead-lettered line gives empty lines, so the output stays parallel
        assert all(got[(n - 1) * k + j].split("\t")[-1] == "" for j in range(k))
    dead = _dead_letters(prefix)
    assert [int(number) for _, number, _ in dead] == sorted(broken)
    assert all(reason.startswith(broken[int(n)]) for _, n, reason in dead)
    assert {Path(path).name for path, _, _ in dead} == {"in.txt"}


class PoisonedExport(LoadedExport):
    """The tiny export, whose runtime fails on any batch that holds `POISON`."""

    def translate(self, rows):
        poison = self.source.encode(POISON)
        if any(list(row) == poison for row in rows):
            raise RuntimeError("injected fault")
        return super().translate(rows)


class BrokenExport(LoadedExport):
    def __init__(self, export_dir, options):
        raise RuntimeError("the worker cannot load the model")


def test_a_runtime_failure_dead_letters_only_its_line(tiny_export, tmp_path):
    lines = [f"{d} March 2021" for d in range(1, 21)]
    lines[6] = POISON
    (tmp_path / "in.txt").write_text("\n".join(lines) + "\n")
    options = resolve({"beam_width": 1}, batch_size=32)
    plain = run_job(tiny_export[0], tmp_path / "in.txt", tmp_path / "plain", options)
    poisoned = run_job(
        tiny_export[0], tmp_path / "in.txt", tmp_path / "poisoned", options, loader=PoisonedExport
    )
    assert (plain.dead_lettered, poisoned.dead_lettered, poisoned.translated) == (0, 1, 19)
    reference = _read_shards(tmp_path / "plain")[0].splitlines()
    out = _read_shards(tmp_path / "poisoned")[0].splitlines()
    assert out[:6] + out[7:] == reference[:6] + reference[7:] and out[6] == ""
    dead = _dead_letters(tmp_path / "poisoned")
    assert [(n, reason) for _, n, reason in dead] == [
        ("7", "runtime error: RuntimeError: injected fault")
    ]


def test_same_bytes_twice_with_one_and_two_workers(tiny_export, tmp_path):
    """Run with one in-process worker, then into the same prefix with bigger shards, then
    with two worker processes: the first and last write identical files, and each run
    replaces the older shards of the prefix."""
    lines, _ = corpus(120, seed=3)
    (tmp_path / "in.txt").write_bytes(b"\n".join(lines))  # no final newline: still 120 lines
    options = resolve({"beam_width": 2}, batch_size=8)
    prefix = tmp_path / "es"
    run_job(tiny_export[0], tmp_path / "in.txt", prefix, options, lines_per_shard=20)
    first = {p.name: p.read_bytes() for p in tmp_path.glob("es-*")}
    assert len(first) == 7  # 6 shards and the dead letters
    run_job(tiny_export[0], tmp_path / "in.txt", prefix, options, lines_per_shard=50)
    assert len(list(tmp_path.glob("es-*"))) == 4  # 3 shards: the 6 older ones are gone
    run_job(tiny_export[0], tmp_path / "in.txt", prefix, options, workers=2, lines_per_shard=20)
    assert {p.name: p.read_bytes() for p in tmp_path.glob("es-*")} == first
    assert not list(tmp_path.glob("es.incomplete-*"))


def test_gzip_tsv_column_and_csv(tiny_export, tmp_path):
    rows = ["id1\t3 March 2021\tx", "id2\t\ty", "id3", "id4\tTuesday, July 5, 1999\tz"]
    with gzip.open(tmp_path / "part-1.tsv.gz", "wt", encoding="utf-8") as out:
        out.write("\n".join(rows) + "\n")
    (tmp_path / "part-2.csv").write_text('"a, b",5 ene 2000\n')
    plain = tmp_path / "plain.txt"
    plain.write_text("3 March 2021\n\n\nTuesday, July 5, 1999\n5 ene 2000\n")
    options = resolve({"beam_width": 1})
    run_job(tiny_export[0], plain, tmp_path / "plain", options)
    reference = _read_shards(tmp_path / "plain")[0].splitlines()
    summary = run_job(
        tiny_export[0], tmp_path / "part-1.tsv.gz", tmp_path / "tsv",
        resolve({"beam_width": 1}, column=2), line_numbers=True,
    )  # fmt: skip
    assert (summary.lines, summary.translated, summary.blank, summary.dead_lettered) == (4, 2, 1, 1)
    out = [line.split("\t") for line in _read_shards(tmp_path / "tsv")[0].splitlines()]
    assert [(Path(f).name, int(n)) for f, n, _ in out] == [
        ("part-1.tsv.gz", n) for n in (1, 2, 3, 4)
    ]
    assert [t for _, _, t in out] == reference[:4]
    assert [(n, r) for _, n, r in _dead_letters(tmp_path / "tsv")] == [("3", "no column 2")]
    run_job(tiny_export[0], tmp_path / "part-2.csv", tmp_path / "csv",
            resolve({"beam_width": 1}, column=2, delimiter=","))  # fmt: skip
    assert _read_shards(tmp_path / "csv")[0].splitlines() == reference[4:]


@pytest.mark.parametrize("runtime, quantized", [("litert", False), ("onnx", True)])
def test_other_runtimes_run_the_same_pipeline(tiny_export, tmp_path, runtime, quantized):
    """LiteRT gives the lines onnxruntime gives (export parity: same tokens); the int8 graphs
    the same line structure (their parity is judged by BLEU, not tokens); bad lines are
    dead-lettered the same way."""
    lines, broken = corpus(40, seed=5)
    (tmp_path / "in.txt").write_bytes(b"\n".join(lines) + b"\n")
    run_job(tiny_export[0], tmp_path / "in.txt", tmp_path / "onnx", resolve({"beam_width": 2}))
    other = resolve({"beam_width": 2}, runtime=runtime, quantized=quantized)
    summary = run_job(tiny_export[0], tmp_path / "in.txt", tmp_path / "other", other)
    assert summary.dead_lettered == len(broken)
    mine, reference = (_read_shards(tmp_path / p)[0].splitlines() for p in ("other", "onnx"))
    if quantized:
        nothing = [i for i, line in enumerate(lines) if i + 1 in broken or not line.strip()]
        assert len(mine) == 40 and all(mine[i] == "" for i in nothing)
    else:
        assert mine == reference


def test_a_failed_job_leaves_no_output_under_the_final_names(tiny_export, tmp_path):
    (tmp_path / "in.txt").write_text("3 March 2021\n4 May 1999\n")
    (tmp_path / "es-00000-of-00001").write_text("an older run\n")
    with pytest.raises(Exception, match="cannot load the model"):
        run_job(
            tiny_export[0], tmp_path / "in.txt", tmp_path / "es", resolve({"beam_width": 1}),
            loader=BrokenExport,
        )  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["es-00000-of-00001", "in.txt"]
    assert (tmp_path / "es-00000-of-00001").read_text() == "an older run\n"


def test_cli_errors_are_one_line_exit_2(tiny_export, tiny_run, tmp_path, capsys, monkeypatch):
    (tmp_path / "in.txt").write_text("3 March 2021\n")
    base = ["translate-corpus", str(tiny_export[0]), "--output", str(tmp_path / "es")]
    cases = [
        ([*base, "--input", str(tmp_path / "none-*.txt")], "matches no file"),
        (["translate-corpus", str(tiny_run), "--input", str(tmp_path / "in.txt"),
          "--output", str(tmp_path / "es")], "has no manifest.json"),
        ([*base, "--input", str(tmp_path / "in.txt"), "--beam", "0"], "`beam_width` must be"),
        ([*base, "--input", str(tmp_path / "in.txt"), "--bem", "4"], "unknown option --bem"),
    ]  # fmt: skip
    for argv, message in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
    monkeypatch.setitem(sys.modules, "apache_beam", None)  # as if the extra were not installed
    assert main([*base, "--input", str(tmp_path / "in.txt")]) == 2
    assert "pip install 'seq2seq-attn[beam]'" in capsys.readouterr().err
    (tmp_path / "file").write_text("not a folder\n")
    with pytest.raises(UserError, match="not a directory"):
        run_job(tiny_export[0], tmp_path / "in.txt", tmp_path / "file" / "es", resolve({}))
    assert not list(tmp_path.glob("es*"))
    # a folder that does not exist yet is made, as `translate --output` makes its own
    monkeypatch.undo()  # apache_beam importable again
    run_job(tiny_export[0], tmp_path / "in.txt", tmp_path / "new" / "out" / "es", resolve({}))
    assert len(list((tmp_path / "new" / "out").glob("es-*-of-*"))) == 1


def test_the_job_imports_no_tensorflow(tiny_export, tmp_path):
    (tmp_path / "in.txt").write_text("3 March 2021\n\n12/05/1999\n")
    code = (
        "import sys\n"
        "from seq2seq_attn.cli import main\n"
        f"assert main(['translate-corpus', {str(tiny_export[0])!r}, '--input', "
        f"{str(tmp_path / 'in.txt')!r}, '--output', {str(tmp_path / 'es')!r}, '-q']) == 0\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tf2onnx')]\n"
        "assert not bad, bad[:5]\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "3 lines: 2 translated, 1 empty, 0 dead-lettered" in run.stdout
    assert len((tmp_path / "es-00000-of-00001").read_text().splitlines()) == 3


def test_shortlist_decodes_each_line_over_its_own_candidates(tiny_export, monkeypatch):
    """`--shortlist`: the server's rule, the shortlist step graph where the columns pay (few
    rows a step, a union at most `shortlist.MAX_SHARE` of the vocabulary), else the full step
    masked per line; an export without the graphs is one error."""
    from seq2seq_attn import shortlist
    from seq2seq_attn.inference.runtime import ROWS, OnnxModel

    loaded = LoadedExport(tiny_export[0], resolve({"beam_width": 2}, shortlist=True))
    calls, decode = [], loaded.model.decode

    def spy(*args, shortlist=False, **kwargs):
        calls.append(shortlist)
        return decode(*args, shortlist=shortlist, **kwargs)

    monkeypatch.setattr(loaded.model, "decode", spy)
    texts = ["3 March 2021", "Dienstag, 9. Dezember 2031", "12/05/1999", "July 4, 1976"]
    rows = [loaded.source.encode(text) for text in texts]
    full = LoadedExport(tiny_export[0], resolve({"beam_width": 2})).translate(rows)
    loaded.translate(rows)
    # the tiny model's candidates are all 30 of its 30 pieces: the full step, masked
    assert len(calls) == 1 and list(calls[0]) == [ROWS] and calls[0][ROWS].all()
    monkeypatch.setattr(shortlist, "MAX_SHARE", 1.0)
    monkeypatch.setattr(shortlist, "MAX_ROWS", 1000)  # 4 lines x 2 beams a step
    calls.clear()
    got = loaded.translate(rows)
    assert calls and all("shortlist_kernel" in call for call in calls)
    # every piece a candidate: the shortlist decode is the full one, token for token
    assert [r.tokens.tolist() for r in got] == [r.tokens.tolist() for r in full]
    monkeypatch.setattr(OnnxModel, "has_shortlist", property(lambda self: False))
    with pytest.raises(UserError, match="no shortlist graphs"):
        LoadedExport(tiny_export[0], resolve({}, shortlist=True))
