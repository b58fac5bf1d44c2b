#!/usr/bin/env python3
"""Rebuild ``data/bible-en-es.tsv.gz``: an English-Spanish verse-aligned Bible corpus.

English: World English Bible (SWORD module ``engWEB2015eb``, Debian ``sword-text-web``).
Spanish: Reina-Valera 1909 (SWORD module ``spaRV1909eb``, Debian ``sword-text-sparv``).
Both are public domain.  The modules are dumped with ``mod2imp`` (Debian ``libsword-utils``),
cleaned of OSIS markup and aligned by (book, chapter, verse).  The King James Version
(``engKJV2006eb``, Debian ``sword-text-kjv``, public domain) serves only as a versification
reference: verses whose content sits under another verse number in either module are dropped.
The rest is split into train/dev/test by whole chapters.  See ``data/README.md`` for the
rules.  Plain Python stdlib only.

Usage::

    apt-get install -y sword-text-web sword-text-sparv sword-text-kjv libsword-utils
    python tools/build_bible.py --out data/bible-en-es.tsv.gz

A build-time tool: it lives outside the package (tools/ does not ship in the wheel).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import html
import io
import os
import re
import subprocess
import sys
import unicodedata
from collections import Counter
from pathlib import Path

EN_MODULE = "engWEB2015eb"
ES_MODULE = "spaRV1909eb"
REF_MODULE = "engKJV2006eb"
SPLIT_QUOTA = 1000  # upper bound on verses in each of dev and test
HEADER = ("ref", "split", "en", "es")
# the corpus's one place in the checkout (installed as seq2seq_attn/corpus/)
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "data" / "bible-en-es.tsv.gz"

# --- markup patterns -------------------------------------------------------------------------

# Attributes may hold quoted text; a quoted '>' must not end the tag.
_ATTRS = r"""(?:[^>"']|"[^"]*"|'[^']*')*"""
_TAG_RUN = re.compile(r"(?:<" + _ATTRS + r">)+")
# Innermost <note>/<title>/<speaker> element: its content holds no opener of those three.
_DROPPED = r"(?:note|title|speaker)"
_INNERMOST_BLOCK = re.compile(
    r"<(" + _DROPPED + r")\b(" + _ATTRS + r")(?<!/)>"
    r"((?:(?!<" + _DROPPED + r"\b).)*?)</\1\s*>",
    re.S,
)
# End of a book (<div ... eID=... type="book"/>): in the WEB the module's glossary is
# appended after it, inside the last verse of Revelation.
_BOOK_END = re.compile(
    r"<div\b(?=" + _ATTRS + r"\beID=)(?=" + _ATTRS + r'\btype="book")' + _ATTRS + r">"
)
_WS = re.compile(r"\s+")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+(?=[.,;:!?])")
_PILCROW = "\u00b6"  # paragraph mark; the KJV module carries it inline
_PLACEHOLDER = "<removed/>"

# Characters after which (resp. before which) a removed tag run still separates two tokens.
_LEFT_JOINS = set(".,;:!?”’)]")
_RIGHT_JOINS = set("“‘([¿¡")

# RV 1909 marks supplied words with <transChange>; an enclitic pronoun supplied this way is
# written glued to its verb ("Medité</w><transChange>lo</transChange>" = "Meditélo").  When
# the word before it is not a verb the pronoun is a separate word ("Jehová los acose").
_ENCLITIC = re.compile(
    r"(?:</w>)?<transChange\b" + _ATTRS + r">(lo|la|los|las|le|les|se|me|te|nos|os)</transChange>"
)
_LAST_WORD = re.compile(r"(\w+)$")
_PROCLITIC_HOSTS = {
    "no",
    "como",
    "que",
    "os",
    "y",
    "ellos",
    "dios",
    "jehová",
    "josué",
    "cuánto",
    "gentes",
}

_STRONGS = re.compile(r"strong:([HG])0*(\d+)")
_LEMMA = re.compile(r'lemma="([^"]*)"')
_WORD = re.compile(r"[a-z]{4,}")
# RV 1909 ends each Pauline epistle with the KJV-style subscription ("... Amén. Escrita de
# Roma á los Efesios por Tichîco."), which is not part of the verse.
_SUBSCRIPTION = re.compile(r"(Amén\.)\s+[^.]*\b(?:escrita|enviada)\b.*$", re.I | re.S)

# RV 1909 prints the first word of each chapter (and of a psalm after its title) in capitals.
_WORD_TOKEN = re.compile(r"^(\W*)(\w+)(\W*)$")
_SENTENCE_END = (".", ":", "?", "!")

# Reference checks against the KJV (see find_misaligned).
SHIFT_MIN_OWN = 0.1  # Strong's Jaccard of an RV verse with its own KJV verse, at least
EN_SHIFT_MARGIN = 0.25  # word Jaccard a neighbouring KJV verse may exceed the own one by
ES_LENGTH_RANGE = (0.5, 1.75)  # len(RV) / len(KJV)
EN_LENGTH_RANGE = (0.55, 1.8)  # len(WEB) / len(KJV)
PAIR_LENGTH_RANGE = (0.55, 1.7)  # len(RV) / len(WEB)
SHIFTED_PER_CHAPTER = 2  # this many shifted RV verses drop the whole chapter

_KEY = re.compile(r"^(?P<book>.+) (?P<chapter>\d+):(?P<verse>\d+)$")
_CHAPTER_OSIS = re.compile(r"<chapter\b" + _ATTRS + r'\bosisID="([^".]+)\.(\d+)"')


# --- cleaning --------------------------------------------------------------------------------


def _block_replacement(match: re.Match) -> str:
    """Replace one innermost note/title/speaker element.

    Canonical titles (Psalm superscriptions, ``canonical="true"``) are scripture text that the
    Spanish module carries inline in verse 1, so their content is kept; everything else goes.
    """
    tag, attrs, content = match.group(1), match.group(2), match.group(3)
    if tag == "title" and 'canonical="true"' in attrs:
        return _PLACEHOLDER + content + _PLACEHOLDER
    return _PLACEHOLDER


def drop_blocks(markup: str) -> str:
    """Remove <note>, <title> and <speaker> elements with their content, innermost first.

    Nested elements (a note inside a title) are handled by repeating until nothing changes.
    Each removed element leaves an empty placeholder tag so word spacing is decided later.
    """
    while True:
        reduced = _INNERMOST_BLOCK.sub(_block_replacement, markup)
        if reduced == markup:
            return markup
        markup = reduced


def cut_after_book_end(markup: str) -> str:
    """Drop everything after an end-of-book marker (WEB appends its glossary there)."""
    match = _BOOK_END.search(markup)
    return markup if match is None else markup[: match.start()]


def glue_enclitics(markup: str) -> str:
    """Join a supplied enclitic pronoun (RV <transChange>) to the verb right before it."""
    if "<transChange" not in markup:
        return markup

    def join(match: re.Match) -> str:
        host = _LAST_WORD.search(match.string[max(0, match.start() - 40) : match.start()])
        if host is None or host.group(1).lower() in _PROCLITIC_HOSTS:
            return match.group(0)
        return match.group(1)

    return _ENCLITIC.sub(join, markup)


def _tag_run_replacement(match: re.Match) -> str:
    """Return a space for a tag run that separates two tokens, else an empty string.

    A space is needed between two words (``God</w><note/><w>created``) or after closing
    punctuation before a word (``Behold,<note/>he``); no space goes before punctuation
    (``tierra</w>.``) or after an opening mark (``“<w>Let``).
    """
    text, start, end = match.string, match.start(), match.end()
    if start == 0 or end == len(text):
        return " "
    left, right = text[start - 1], text[end]
    left_ok = left.isalnum() or left in _LEFT_JOINS
    right_ok = right.isalnum() or right in _RIGHT_JOINS
    return " " if left_ok and right_ok else ""


def clean_markup(markup: str) -> str:
    """Turn one verse of OSIS markup into plain text.

    Steps: cut an appended glossary, join supplied enclitics, drop note/title/speaker blocks,
    replace remaining markup by a space where it separates tokens, unescape entities, drop
    pilcrows, collapse whitespace, drop spaces before closing punctuation and strip.
    """
    markup = cut_after_book_end(markup)
    markup = glue_enclitics(markup)
    markup = drop_blocks(markup)
    text = _TAG_RUN.sub(_tag_run_replacement, markup)
    text = html.unescape(text).replace(_PILCROW, " ")
    text = _SPACE_BEFORE_PUNCT.sub("", _WS.sub(" ", text))
    return text.strip()


# --- reading modules -------------------------------------------------------------------------


def run_mod2imp(module: str, sword_path: str | None = None) -> str:
    """Return the raw ``mod2imp`` dump of one SWORD module (UTF-8 text)."""
    env = dict(os.environ)
    if sword_path:
        env["SWORD_PATH"] = sword_path
    proc = subprocess.run(["mod2imp", module], capture_output=True, check=True, env=env)
    text = proc.stdout.decode("utf-8")
    if "$$$" not in text:
        raise RuntimeError(f"mod2imp printed no entries for {module}: is it installed?")
    return text


def parse_imp(text: str) -> list[tuple[str, int, str]]:
    """Split an imp dump into ``(key, testament, markup)`` entries in module order.

    Keys are the ``$$$`` lines ("Genesis 1:1"); testament is 1 or 2, taken from the
    ``[ Testament N Heading ]`` entries that mod2imp emits.
    """
    entries: list[tuple[str, int, str]] = []
    key, testament, lines = None, 0, []
    for line in io.StringIO(text):
        if line.startswith("$$$"):
            if key is not None:
                entries.append((key, testament, "".join(lines)))
            key, lines = line[3:].rstrip("\r\n"), []
            heading = re.match(r"\[ Testament (\d) Heading \]", key)
            if heading:
                testament = int(heading.group(1))
        else:
            lines.append(line)
    if key is not None:
        entries.append((key, testament, "".join(lines)))
    return entries


def parse_key(key: str) -> tuple[str, int, int] | None:
    """Return ``(book, chapter, verse)`` for a verse key, None for headings and intros."""
    match = _KEY.match(key)
    if not match:
        return None
    chapter, verse = int(match["chapter"]), int(match["verse"])
    if chapter == 0 or verse == 0:
        return None
    return match["book"], chapter, verse


def osis_book_ids(entries: list[tuple[str, int, str]]) -> dict[str, str]:
    """Map SWORD book names ("Genesis") to OSIS ids ("Gen") from the <chapter osisID> tags."""
    ids: dict[str, str] = {}
    for key, _, markup in entries:
        match = _KEY.match(key)
        if not match:
            continue
        for osis, _chapter in _CHAPTER_OSIS.findall(markup):
            known = ids.setdefault(match["book"], osis)
            if known != osis:
                raise ValueError(f"book {match['book']!r} has OSIS ids {known} and {osis}")
    return ids


def verse_markup(entries: list[tuple[str, int, str]]) -> dict:
    """Return ``{(book, chapter, verse): (testament, markup)}`` for every verse key, in order."""
    out = {}
    for key, testament, markup in entries:
        parsed = parse_key(key)
        if parsed is not None:
            out[parsed] = (testament, markup)
    return out


def verse_texts(markup: dict) -> dict[tuple[str, int, int], str]:
    """Clean every verse; keep the non-empty ones."""
    texts = {}
    for key, (_testament, raw) in markup.items():
        text = clean_markup(raw)
        if text:
            texts[key] = text
    return texts


def strip_subscriptions(texts: dict[tuple[str, int, int], str]) -> dict:
    """Cut the epistle subscriptions ("Escrita de Roma ...") from each book's last verse."""
    last = {}
    for key in texts:
        last[key[0]] = key
    out = dict(texts)
    for key in last.values():
        out[key] = _SUBSCRIPTION.sub(r"\1", out[key])
    return out


def _fold(word: str) -> str:
    """Lower-case a word and drop its diacritics ("Achâb" -> "achab")."""
    decomposed = unicodedata.normalize("NFD", word.lower())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def case_forms(texts: dict) -> dict[str, Counter]:
    """For each folded word, count how often it is written lower-case vs capitalised."""
    forms: dict[str, Counter] = {}
    for text in texts.values():
        for token in text.split():
            match = _WORD_TOKEN.match(token)
            if match and not match.group(2).isupper():
                word = match.group(2)
                kind = "title" if word[0].isupper() else "lower"
                forms.setdefault(_fold(word), Counter())[kind] += 1
    return forms


def recase_word(word: str, forms: dict[str, Counter], sentence_start: bool) -> str:
    """Rewrite an all-capitals word in its commoner case ("FUERON" -> "fueron", "ACHAB" ->
    "Achab"), capitalised at a sentence start; unseen words go lower-case."""
    seen = forms.get(_fold(word), Counter())
    if sentence_start or seen["title"] > seen["lower"]:
        return word.lower().capitalize()
    return word.lower()


def _starts_sentence(tokens: list[str], i: int) -> bool:
    """True when token ``i`` begins the text or follows sentence-final punctuation."""
    return i == 0 or tokens[i - 1].endswith(_SENTENCE_END)


def recase_drop_caps(text: str, forms: dict[str, Counter]) -> str:
    """Undo the drop-capital word of a chapter's first verse (RV 1909 typography).

    Touches an all-capital word of two letters or more that starts a sentence ("EN el
    principio", "Salmo de David. JEHOVÁ es ...") or follows a one- or two-letter word that does
    ("Y FUERON", "A TI"); one-word headings ("ALEPH.") and inscriptions inside sentences are
    left alone.
    """
    tokens = text.split(" ")
    for i, token in enumerate(tokens):
        match = _WORD_TOKEN.match(token)
        if not match or len(match.group(2)) < 2 or not match.group(2).isupper():
            continue
        if token.endswith(".") and _starts_sentence(tokens, i):
            continue  # a one-word heading such as "ALEPH." in Psalm 119
        start = _starts_sentence(tokens, i)
        after_short_opener = (
            i > 0 and _starts_sentence(tokens, i - 1) and (len(tokens[i - 1].strip("¡¿")) <= 2)
        )
        if start or after_short_opener:
            tokens[i] = match.group(1) + recase_word(match.group(2), forms, start) + match.group(3)
    return " ".join(tokens)


def normalise_spanish(texts: dict) -> dict:
    """Strip epistle subscriptions and undo chapter drop capitals in the RV texts."""
    texts = strip_subscriptions(texts)
    forms = case_forms(texts)
    return {
        key: recase_drop_caps(text, forms) if key[2] == 1 else text for key, text in texts.items()
    }


def strongs_numbers(markup: str) -> set[str]:
    """Strong's numbers ("H430", "G2316") tagged in a verse, outside notes and titles."""
    markup = drop_blocks(cut_after_book_end(markup))
    numbers = set()
    for lemma in _LEMMA.findall(markup):
        numbers.update(prefix + number for prefix, number in _STRONGS.findall(lemma))
    return numbers


def content_words(text: str) -> set[str]:
    """Lower-cased words of four or more letters (a crude English content signature)."""
    return set(_WORD.findall(text.lower()))


def jaccard(a: set, b: set) -> float:
    """Jaccard similarity of two sets; 0.0 when both are empty."""
    return len(a & b) / len(a | b) if a or b else 0.0


# --- aligning and splitting ------------------------------------------------------------------


def _neighbours(order: list, position: dict, key) -> list:
    """The verse keys just before and after ``key`` in reference order (across chapters)."""
    i = position[key]
    return [order[j] for j in (i - 1, i + 1) if 0 <= j < len(order)]


def _shifted(sig: set, ref_sigs: dict, key, near: list, min_own: float, margin: float) -> bool:
    """True when ``sig`` matches its own reference verse poorly or a neighbour's better."""
    own = jaccard(sig, ref_sigs.get(key, set()))
    others = [jaccard(sig, ref_sigs.get(n, set())) for n in near]
    return own < min_own or any(other > own + margin for other in others)


def _length_ok(text: str, ref_text: str, bounds: tuple[float, float]) -> bool:
    """True when ``len(text) / len(ref_text)`` lies within ``bounds``."""
    low, high = bounds
    return low <= len(text) / len(ref_text) <= high


def _verse_reasons(key, near, en, es, ref, sigs) -> list[str]:
    """Reasons to distrust one verse pair, judged against the KJV reference."""
    reasons = []
    if sigs["es"].get(key) and sigs["ref"].get(key):
        if _shifted(sigs["es"][key], sigs["ref"], key, near, SHIFT_MIN_OWN, 0.0):
            reasons.append("es-shifted")
    if sigs["en"].get(key) and sigs["ref_words"].get(key):
        if _shifted(sigs["en"][key], sigs["ref_words"], key, near, 0.0, EN_SHIFT_MARGIN):
            reasons.append("en-shifted")
    if key in ref:
        if not _length_ok(es[key], ref[key], ES_LENGTH_RANGE):
            reasons.append("es-length")
        if not _length_ok(en[key], ref[key], EN_LENGTH_RANGE):
            reasons.append("en-length")
    if not _length_ok(es[key], en[key], PAIR_LENGTH_RANGE):
        reasons.append("pair-length")
    return reasons


def find_misaligned(en, es, es_markup, ref, ref_markup) -> dict:
    """Map each distrusted verse key to its reasons (see data/README.md, "Alignment checks").

    Per verse: the RV verse's Strong's numbers must match its own KJV verse (Jaccard at least
    SHIFT_MIN_OWN) no worse than the KJV verses before and after it; the WEB verse's words must
    not match a neighbouring KJV verse by more than EN_SHIFT_MARGIN over its own; both lengths
    must be in range of the KJV verse, and the RV length in range of the WEB one.  Per chapter:
    SHIFTED_PER_CHAPTER shifted RV verses drop the whole chapter.  Next to a gap: the verse
    before a key the RV leaves empty (and the KJV does not) is dropped, as its text may hold
    the missing verse.
    """
    order = list(ref_markup)
    position = {key: i for i, key in enumerate(order)}
    sigs = {
        "es": {key: strongs_numbers(raw) for key, (_t, raw) in es_markup.items()},
        "ref": {key: strongs_numbers(raw) for key, (_t, raw) in ref_markup.items()},
        "en": {key: content_words(text) for key, text in en.items()},
        "ref_words": {key: content_words(text) for key, text in ref.items()},
    }
    paired = [key for key in es if key in en]
    reasons = {}
    for key in paired:
        found = _verse_reasons(key, _neighbours(order, position, key), en, es, ref, sigs)
        if found:
            reasons[key] = found
    shifted = Counter(key[:2] for key, why in reasons.items() if "es-shifted" in why)
    for key in paired:
        if shifted[key[:2]] >= SHIFTED_PER_CHAPTER:
            reasons.setdefault(key, []).append("es-chapter-shifted")
    for key in order:
        if key not in es and key in ref:
            before = _neighbours(order, position, key)[0]
            if before in en and before in es:
                reasons.setdefault(before, []).append("es-gap-next")
    return reasons


def align(en_entries, es_entries, ref_entries) -> tuple[list[dict], dict]:
    """Pair verses non-empty in both modules and not distrusted, in the Spanish order.

    Returns the rows (ref "Gen 1:1", chapter "Gen 1", testament, en, es) and the dropped
    keys with their reasons.
    """
    en_markup, es_markup = verse_markup(en_entries), verse_markup(es_entries)
    ref_markup = verse_markup(ref_entries)
    en, ref = verse_texts(en_markup), verse_texts(ref_markup)
    es = normalise_spanish(verse_texts(es_markup))
    dropped = find_misaligned(en, es, es_markup, ref, ref_markup)
    books = osis_book_ids(es_entries)
    rows = []
    for key, es_text in es.items():
        if key not in en or key in dropped:
            continue
        book, chapter, verse = key
        osis = books[book]
        rows.append(
            {
                "ref": f"{osis} {chapter}:{verse}",
                "chapter": f"{osis} {chapter}",
                "testament": es_markup[key][0],
                "en": en[key],
                "es": es_text,
            }
        )
    return rows, dropped


def chapter_hash(chapter: str) -> str:
    """Stable ordering key for a chapter name such as "Gen 1"."""
    return hashlib.sha256(chapter.encode("utf-8")).hexdigest()


def assign_splits(rows: list[dict], quota: int = SPLIT_QUOTA) -> dict[str, str]:
    """Map each chapter to train/dev/test; dev and test hold whole chapters.

    Per testament, the quota of ``quota`` verses per split is shared in proportion to the
    testament's verse count.  Chapters are walked in SHA-256 order of their name; a chapter
    goes to dev if it still fits dev's share, else to test if it fits test's, else train.
    """
    sizes: dict[str, int] = Counter(row["chapter"] for row in rows)
    testament_of = {row["chapter"]: row["testament"] for row in rows}
    total = sum(sizes.values())
    splits = {chapter: "train" for chapter in sizes}
    for testament in sorted(set(testament_of.values())):
        chapters = sorted((c for c in sizes if testament_of[c] == testament), key=chapter_hash)
        share = round(quota * sum(sizes[c] for c in chapters) / total)
        filled = {"dev": 0, "test": 0}
        for chapter in chapters:
            for split in ("dev", "test"):
                if filled[split] + sizes[chapter] <= share:
                    splits[chapter] = split
                    filled[split] += sizes[chapter]
                    break
    return splits


# --- writing ---------------------------------------------------------------------------------


def tsv_bytes(rows: list[dict], splits: dict[str, str]) -> bytes:
    """Render the TSV (header + one line per verse) as UTF-8 bytes."""
    lines = ["\t".join(HEADER)]
    for row in rows:
        fields = (row["ref"], splits[row["chapter"]], row["en"], row["es"])
        if any(("\t" in f or "\n" in f or not f) for f in fields):
            raise ValueError(f"bad field in {row['ref']}")
        lines.append("\t".join(fields))
    return ("\n".join(lines) + "\n").encode("utf-8")


def write_gzip(data: bytes, out: Path) -> None:
    """Write reproducible gzip: mtime 0, no file name in the header, fixed level."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as gz:
            gz.write(data)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point: dump, clean, align, split, write, print counts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument(
        "--sword-path",
        default=None,
        help="SWORD library root (sets SWORD_PATH; default: /etc/sword.conf)",
    )
    args = parser.parse_args(argv)

    en_entries = parse_imp(run_mod2imp(EN_MODULE, args.sword_path))
    es_entries = parse_imp(run_mod2imp(ES_MODULE, args.sword_path))
    ref_entries = parse_imp(run_mod2imp(REF_MODULE, args.sword_path))
    rows, dropped = align(en_entries, es_entries, ref_entries)
    splits = assign_splits(rows)
    write_gzip(tsv_bytes(rows, splits), args.out)

    why = Counter(reason for reasons in dropped.values() for reason in reasons)
    print(
        f"dropped\t{len(dropped)} verse pairs failing the KJV alignment checks: "
        + ", ".join(f"{reason} {n}" for reason, n in sorted(why.items()))
    )
    counts = Counter(splits[row["chapter"]] for row in rows)
    chapters = Counter(splits.values())
    for split in ("train", "dev", "test"):
        print(f"{split}\t{counts[split]} verses\t{chapters[split]} chapters")
    print(f"total\t{len(rows)} verses -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
