"""Write `benchmarks/data/bible_test_100.align.jsonl`: reference word alignments of the first
100 Bible test verses, made once by the statistical aligner eflomal.

The reference of `benchmarks/alignment_error.py`. It is an automatic aligner's output, not
human gold: no hand-aligned English-Spanish data is on the package registries.

How: the pretrained run's corpus (`seq2seq_attn/pretrained/bible-en-es`, its data spec and
seed) gives the test split; its first 100 verses, then the whole training split, are written
lower-cased as space-separated words, one pair a line, and aligned by eflomal 2.0.0 (PyPI)
in both directions with its defaults:

    eflomal-align -s SOURCE -t TARGET -f FORWARD -r REVERSE --overwrite

The words of a test verse are the model's own word split (`seq2seq_attn.alignment.
piece_words` of the tokenizer's pieces, the words `translate --alignment` numbers). The links
are symmetrised as usual for AER: sure = the links both directions agree on, possible = the
links of either. eflomal samples at random, so another run gives slightly different links:
the committed file is the reference.

Runs only where eflomal is installed (not a dependency of the package; never run by the tests
or the benchmarks), e.g. in a separate virtual environment:

    python -m venv /tmp/eflo && /tmp/eflo/bin/pip install eflomal==2.0.0
    .venv/bin/python tools/align_reference.py --eflomal /tmp/eflo/bin/eflomal-align
"""

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "data" / "bible_test_100.align.jsonl"
VERSES = 100


def model_words(tokenizer, text):
    """The words of `text` as the model's word split sees them."""
    from seq2seq_attn.alignment import piece_words

    words, _ = piece_words(tokenizer.id_to_token(tokenizer.encode(text)))
    if len(words) != len(text.split()):
        raise ValueError(f"the model's words differ from the text's: {text!r}")
    return words


def links(path):
    from seq2seq_attn.alignment import parse_pharaoh

    return [set(parse_pharaoh(line)) for line in Path(path).read_text().splitlines()]


def align(eflomal, source_lines, target_lines, folder):
    """`(forward, reverse)` link sets per line, from eflomal-align in `folder`."""
    folder = Path(folder)
    (folder / "src.txt").write_text("\n".join(source_lines) + "\n")
    (folder / "trg.txt").write_text("\n".join(target_lines) + "\n")
    command = [eflomal, "-s", "src.txt", "-t", "trg.txt", "-f", "fwd.txt", "-r", "rev.txt"]
    subprocess.run([*command, "--overwrite"], cwd=folder, check=True)
    return links(folder / "fwd.txt"), links(folder / "rev.txt")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eflomal", default="eflomal-align", help="the eflomal-align program")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    from seq2seq_attn.commands import PRETRAINED_DIR
    from seq2seq_attn.tokenizer import TokenizerPair
    from seq2seq_attn.training import run_corpus

    info = json.loads((PRETRAINED_DIR / "run.json").read_text())
    corpus = run_corpus(PRETRAINED_DIR, info)
    tokenizers = TokenizerPair.load(PRETRAINED_DIR / "tokenizer")
    test = corpus.test[:VERSES]
    words = [
        (model_words(tokenizers.source, s), model_words(tokenizers.target, t)) for s, t in test
    ]
    source = [" ".join(s).lower() for s, _ in words] + [s.lower() for s, _ in corpus.train]
    target = [" ".join(t).lower() for _, t in words] + [t.lower() for _, t in corpus.train]
    source, target = [" ".join(x.split()) for x in source], [" ".join(x.split()) for x in target]
    with tempfile.TemporaryDirectory() as folder:
        forward, reverse = align(args.eflomal, source, target, folder)
    header = {
        "about": __doc__.split("\n\n")[0].replace("\n", " "),
        "reference": "eflomal 2.0.0 (PyPI), an automatic aligner, not human gold",
        "command": "eflomal-align -s SOURCE -t TARGET -f FORWARD -r REVERSE --overwrite",
        "corpus": f"{VERSES} first test verses, then the {len(corpus.train)} training verses, "
        f"of {info['data']} (seed {info['seed']}), lower-cased, split at spaces",
        "sure": "links in both directions (intersection)",
        "possible": "links in either direction (union)",
        "produced_by": "tools/align_reference.py",
    }
    from seq2seq_attn.alignment import format_pharaoh

    lines = [json.dumps({"header": header}, ensure_ascii=False)]
    for (s, t), f, r in zip(words, forward, reverse, strict=False):
        sure, possible = sorted(f & r), sorted(f | r)
        row = {"source_words": s, "target_words": t}
        row |= {"sure": format_pharaoh(sure), "possible": format_pharaoh(possible)}
        lines.append(json.dumps(row, ensure_ascii=False))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {len(lines) - 1} verses to {args.out}")


if __name__ == "__main__":
    main()
