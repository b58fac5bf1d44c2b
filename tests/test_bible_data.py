"""Checks on the shipped English-Spanish Bible corpus and on tools/build_bible.py's cleaning.

Fast: reads the 2.7 MB gzip once and needs neither SWORD nor mod2imp.
"""

from __future__ import annotations

import gzip
import importlib.util
import re
import struct
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "data" / "bible-en-es.tsv.gz"
NT_BOOKS = {
    "Matt",
    "Mark",
    "Luke",
    "John",
    "Acts",
    "Rom",
    "1Cor",
    "2Cor",
    "Gal",
    "Eph",
    "Phil",
    "Col",
    "1Thess",
    "2Thess",
    "1Tim",
    "2Tim",
    "Titus",
    "Phlm",
    "Heb",
    "Jas",
    "1Pet",
    "2Pet",
    "1John",
    "2John",
    "3John",
    "Jude",
    "Rev",
}
REF = re.compile(r"^([1-3]?[A-Z][A-Za-z]+) (\d+):(\d+)$")


def _load_builder():
    """Import tools/build_bible.py from its path (a build-time script, not in the package)."""
    spec = importlib.util.spec_from_file_location("build_bible", ROOT / "tools" / "build_bible.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bb = _load_builder()


@pytest.fixture(scope="module")
def lines() -> list[str]:
    with gzip.open(CORPUS, "rt", encoding="utf-8", newline="") as handle:
        return handle.read().split("\n")


@pytest.fixture(scope="module")
def rows(lines) -> list[list[str]]:
    assert lines[-1] == "", "file must end with a newline"
    return [line.split("\t") for line in lines[1:-1]]


# --- the shipped file ------------------------------------------------------------------------


def test_gzip_is_reproducible():
    raw = CORPUS.read_bytes()
    assert raw[:3] == b"\x1f\x8b\x08"
    flags, mtime = raw[3], struct.unpack("<I", raw[4:8])[0]
    assert mtime == 0
    assert not flags & 0x08, "no file name in the gzip header"


def test_header_and_columns(lines, rows):
    assert lines[0] == "ref\tsplit\ten\tes"
    assert all(len(row) == 4 for row in rows)
    assert all(row[1] in {"train", "dev", "test"} for row in rows)
    assert all(REF.match(row[0]) for row in rows)


def test_counts_per_split(rows):
    counts = Counter(row[1] for row in rows)
    assert 30_000 <= len(rows) <= 31_200
    assert 900 <= counts["dev"] <= 1_000
    assert 900 <= counts["test"] <= 1_000
    assert counts["train"] == len(rows) - counts["dev"] - counts["test"]


def test_no_chapter_in_two_splits(rows):
    split_of: dict[str, set[str]] = {}
    for ref, split, _en, _es in rows:
        split_of.setdefault(ref.rsplit(":", 1)[0], set()).add(split)
    assert all(len(splits) == 1 for splits in split_of.values())


def test_dev_and_test_span_both_testaments(rows):
    for split in ("dev", "test"):
        books = {row[0].split()[0] for row in rows if row[1] == split}
        assert books & NT_BOOKS and books - NT_BOOKS


def test_no_duplicate_refs(rows):
    refs = [row[0] for row in rows]
    assert len(refs) == len(set(refs))


def test_canonical_order(rows):
    assert rows[0][0] == "Gen 1:1" and rows[-1][0] == "Rev 22:21"
    seen_books: list[str] = []
    previous = None
    for ref, *_ in rows:
        book, chapter, verse = REF.match(ref).groups()
        if not seen_books or seen_books[-1] != book:
            assert book not in seen_books, f"{book} appears in two blocks"
            seen_books.append(book)
            previous = None
        position = (int(chapter), int(verse))
        assert previous is None or position > previous, ref
        previous = position
    assert len(seen_books) == 66


@pytest.mark.parametrize("column", [2, 3])
def test_fields_clean(rows, column):
    bad = re.compile(r"[<>\u00b6\t]|&(?:[A-Za-z]+|#\d+|#x[0-9A-Fa-f]+);|\s\s|^\s|\s$|\s[.,;:!?]")
    for row in rows:
        text = row[column]
        assert text, f"empty field in {row[0]}"
        assert not bad.search(text), f"{row[0]}: {text!r}"


def test_known_verses(rows):
    by_ref = {row[0]: row for row in rows}
    assert by_ref["Gen 1:1"][2] == "In the beginning, God created the heavens and the earth."
    assert by_ref["Gen 1:1"][3] == "En el principio crió Dios los cielos y la tierra."
    assert by_ref["Ps 23:1"][3].startswith("Salmo de David. Jehová es mi pastor")
    assert by_ref["Ps 23:1"][2].startswith("A Psalm by David. Yahweh is my shepherd")
    assert by_ref["Rev 22:21"][2].endswith("Amen.")  # no glossary appended
    assert "Escrita" not in by_ref["Eph 6:24"][3]  # epistle subscription cut


# --- cleaning, unit tests on hand-written markup ---------------------------------------------


def test_note_removed_with_content():
    raw = 'God<note placement="foot"><reference>1:1</reference>The Hebrew word</note><w>created'
    assert bb.clean_markup(raw) == "God created"


def test_nested_note_in_title_removed():
    raw = '<title>THE SONG<note n="a>b">x<seg>y</seg></note> of three</title>Blessed <w>are</w>'
    assert bb.clean_markup(raw) == "Blessed are"


def test_title_removed_but_canonical_psalm_title_kept():
    assert bb.clean_markup('<title type="x-heading">Heading</title> Text.') == "Text."
    raw = '<title canonical="true" type="psalm">A Psalm by David.</title> <l/>Yahweh'
    assert bb.clean_markup(raw) == "A Psalm by David. Yahweh"


def test_speaker_labels_removed():
    assert bb.clean_markup("<speaker>Beloved</speaker> <l/>Let him kiss me") == "Let him kiss me"


def test_markup_between_words_becomes_space():
    assert bb.clean_markup('<w lemma="strong:H1">Yahweh</w><w lemma="strong:H2">God</w>') == (
        "Yahweh God"
    )
    assert bb.clean_markup("soon.<div eID='x'/><div sID='y'/>Peace") == "soon. Peace"


def test_markup_next_to_punctuation_leaves_no_space():
    assert bb.clean_markup('<w lemma="a">tierra</w>.') == "tierra."
    assert bb.clean_markup('said, “<w lemma="a">Let</w> there') == "said, “Let there"
    assert bb.clean_markup("¡<w>OH</w> Jehová") == "¡OH Jehová"


def test_whitespace_collapsed_and_stripped():
    assert bb.clean_markup("  a \n\t b   <lb/>  c  ") == "a b c"
    assert bb.clean_markup("coins <q>?</q>") == "coins?"


def test_entities_unescaped_and_pilcrow_dropped():
    assert bb.clean_markup("TR &amp; NU") == "TR & NU"
    assert bb.clean_markup("\u00b6 And he said") == "And he said"


def test_text_after_book_end_dropped():
    raw = 'Amen. <chapter eID="Rev.22"/><div eID="g1" osisID="Rev" type="book"/> Glossary text'
    assert bb.clean_markup(raw) == "Amen."


def test_enclitic_pronoun_glued_to_verb_only():
    added = '<transChange type="added">{}</transChange>'
    assert bb.clean_markup("<w>Medité</w>" + added.format("lo") + " entonces") == (
        "Meditélo entonces"
    )
    assert bb.clean_markup("<w>Jehová</w>" + added.format("los") + "<w>acose</w>") == (
        "Jehová los acose"
    )
    assert bb.clean_markup("<w>siempre</w>" + added.format("es") + "<w>su</w>") == ("siempre es su")


def test_drop_caps_recased():
    forms = bb.case_forms({1: "fueron Hiram Jehová fueron"})
    assert bb.recase_drop_caps("EN el principio", forms) == "En el principio"
    assert bb.recase_drop_caps("Y FUERON acabados", forms) == "Y fueron acabados"
    assert bb.recase_drop_caps("E HIRAM rey", forms) == "E Hiram rey"
    assert bb.recase_drop_caps("Salmo de David. JEHOVÁ es", forms) == "Salmo de David. Jehová es"
    assert bb.recase_drop_caps("ALEPH. BIENAVENTURADOS los", forms) == "ALEPH. Bienaventurados los"
    assert bb.recase_drop_caps("DICEN: Si alguno", forms) == "Dicen: Si alguno"
    inscription = "Y pusieron encima JESÚS REY"
    assert bb.recase_drop_caps(inscription, forms) == inscription


def test_subscription_stripped_from_last_verse_only():
    texts = {
        ("Efesios", 6, 23): "Paz sea á los hermanos. Amén. Escrita antes.",
        ("Efesios", 6, 24): "Gracia sea con todos. Amén. Escrita de Roma á los Efesios.",
    }
    out = bb.strip_subscriptions(texts)
    assert out[("Efesios", 6, 24)] == "Gracia sea con todos. Amén."
    assert out[("Efesios", 6, 23)] == texts[("Efesios", 6, 23)]


def test_parse_imp_and_keys():
    dump = "$$$[ Testament 1 Heading ]\n\n$$$Genesis 1:0\n<chapter/>\n$$$Genesis 1:1\nEN el\n"
    dump += "$$$[ Testament 2 Heading ]\n\n$$$Matthew 1:1\nLibro\n"
    entries = bb.parse_imp(dump)
    assert [(k, t) for k, t, _ in entries][-1] == ("Matthew 1:1", 2)
    assert bb.parse_key("Genesis 1:1") == ("Genesis", 1, 1)
    assert bb.parse_key("Genesis 1:0") is None
    assert bb.parse_key("[ Module Heading ]") is None
    assert bb.parse_key("Song of Solomon 2:3") == ("Song of Solomon", 2, 3)


def test_assign_splits_whole_chapters_and_deterministic():
    rows = [
        {"chapter": f"Book {c}", "testament": 1 if c <= 30 else 2}
        for c in range(1, 41)
        for _verse in range(10)
    ]
    splits = bb.assign_splits(rows, quota=40)
    assert splits == bb.assign_splits(list(reversed(rows)), quota=40)
    sizes = Counter(splits[row["chapter"]] for row in rows)
    assert sizes["dev"] == 40 and sizes["test"] == 40
