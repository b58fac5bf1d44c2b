"""Alignment error rate of the pretrained model's attention against reference word alignments.

The reference: `benchmarks/data/bible_test_100.align.jsonl`, the first 100 Bible test verses
aligned once by eflomal 2.0.0 (sure = the links both directions agree on, possible = those
of either; `tools/align_reference.py` made it). It is a statistical aligner's output, not
human gold, so the figures say how far the attention agrees with a good automatic aligner.

The hypothesis: the shipped model `seq2seq_attn/pretrained/bible-en-es`, teacher-forced on
each verse's reference Spanish, its attention turned into a hard word alignment by
`seq2seq_attn.alignment.word_alignment` (what `translate --alignment hard` prints). Three
variants of which attention row goes with output token i: row i, as computed and as the code
uses it; the next step's row (i + 1); the previous step's row (i - 1), the off-by-one check.

AER (Och and Ney 2003) = 1 - (|A & S| + |A & P|) / (|A| + |S|), precision = |A & P| / |A|,
recall = |A & S| / |S|, with the link counts summed over the verses.

    python -m benchmarks alignment_error          # 100 verses, ~1 min on 2 CPU cores
    python -m benchmarks alignment_error --small  # 20 verses

Writes benchmarks/results/alignment_error.json.
"""

import json

import numpy as np

from benchmarks.harness import ROOT, fill_defaults

PRETRAINED = ROOT / "seq2seq_attn" / "pretrained" / "bible-en-es"
REFERENCE = ROOT / "benchmarks" / "data" / "bible_test_100.align.jsonl"
VARIANTS = ("row i (as computed)", "row i + 1 (next step)", "row i - 1 (previous step)")


def read_reference(path=REFERENCE):
    """`(header, verses)`: each verse a dict of source_words, target_words, sure, possible
    (the last two as sets of `(source, target)` word indices)."""
    from seq2seq_attn.alignment import parse_pharaoh

    lines = [json.loads(line) for line in open(path, encoding="utf-8")]
    verses = []
    for row in lines[1:]:
        sure, possible = set(parse_pharaoh(row["sure"])), set(parse_pharaoh(row["possible"]))
        verses.append({**row, "sure": sure, "possible": possible | sure})
    return lines[0]["header"], verses


def counts(hypothesis, sure, possible):
    """`(|A & S|, |A & P|, |A|, |S|)` of one verse's link sets."""
    return len(hypothesis & sure), len(hypothesis & possible), len(hypothesis), len(sure)


def error_rates(a_sure, a_possible, a, s):
    """AER, precision and recall from summed link counts."""
    return {
        "aer": 1 - (a_sure + a_possible) / (a + s),
        "precision": a_possible / a,
        "recall": a_sure / s,
    }


def shifted(attention):
    """The attention of each variant: rows as computed, moved up one, moved down one (the
    edge row repeated)."""
    return dict(
        zip(
            VARIANTS,
            (
                attention,
                np.concatenate([attention[1:], attention[-1:]]),  # row i + 1 for token i
                np.concatenate([attention[:1], attention[:-1]]),  # row i - 1 for token i
            ),
            strict=True,
        )
    )


def teacher_forced_attention(translator, source, target):
    """Attention `(target pieces incl. [END], source pieces)` of the model fed the reference,
    and the piece strings of both sides."""
    import tensorflow as tf

    src_tok, trg_tok = translator.tokenizers.source, translator.tokenizers.target
    sids, tids = src_tok.encode(source), trg_tok.encode(target)
    _, weights = translator.model.teacher_forced(tf.constant([sids]), tf.constant([tids[:-1]]))
    return weights.numpy()[0], src_tok.id_to_token(sids), trg_tok.id_to_token(tids[1:])


def measure(translator, verses):
    """Summed link counts and rates of every variant over `verses`."""
    from seq2seq_attn.alignment import word_alignment

    totals = {name: np.zeros(4, int) for name in VARIANTS}
    for verse in verses:
        source, target = " ".join(verse["source_words"]), " ".join(verse["target_words"])
        attention, source_pieces, target_pieces = teacher_forced_attention(
            translator, source, target
        )
        for name, rows in shifted(attention).items():
            aligned = word_alignment(rows, source_pieces, target_pieces)
            if (aligned.source_words, aligned.target_words) != (
                verse["source_words"],
                verse["target_words"],
            ):
                raise ValueError(f"the model's words differ from the reference's: {source!r}")
            totals[name] += counts(set(aligned.hard()), verse["sure"], verse["possible"])
    return {
        name: {
            **{k: round(v, 4) for k, v in error_rates(*total).items()},
            "links": int(total[2]),
            "sure_links": int(total[3]),
        }
        for name, total in totals.items()
    }


def add_arguments(parser):
    parser.add_argument("--verses", type=int, help="reference verses used (100; small 20)")


def run(args):
    fill_defaults(args, {"verses": 100}, {"verses": 20})
    from seq2seq_attn.translator import Translator

    header, verses = read_reference()
    verses = verses[: args.verses]
    translator = Translator.load(PRETRAINED)
    variants = measure(translator, verses)
    for name, row in variants.items():
        print(
            f"{name:26} AER {row['aer']:.3f}  precision {row['precision']:.3f}  "
            f"recall {row['recall']:.3f}  links {row['links']}  sure {row['sure_links']}",
            flush=True,
        )
    return {
        "verses": len(verses),
        "reference": header["reference"],
        "reference_file": str(REFERENCE.relative_to(ROOT)),
        "possible_links": sum(len(v["possible"]) for v in verses),
        "variants": variants,
    }
