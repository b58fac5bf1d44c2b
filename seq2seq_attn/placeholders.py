"""Placeholders and markup that survive translation: taken out of the text, put back by alignment.

TensorFlow-free; the translator, the server and the CLI use it. UI strings carry pieces
that must come back unchanged: printf conversions (`%s`, `%d`, `%1$s`, Qt's `%1`, and the
literal `%%`), braces (`{name}`, `{0}`), `$(ARG)` and `${name}`, XML/HTML tags (`<b>`,
`</b>`, `<br/>`) and entities (`&amp;`, `&#169;`). A model never trained on them mangles
them, so:

1. `Placeholders.mask` finds them with the configured patterns (`DEFAULT_PATTERNS`, or your
   own `Pattern`s) and takes them out of the text; the model translates the rest.
2. `Placeholders.restore` puts each one back into the translation, next to the target word
   that the attention aligns (`seq2seq_attn.alignment`) with its source neighbour: a
   placeholder glued to the following word (an opening tag, `&File`), or with no word
   before it, goes before the target word aligned with that following word; any other
   goes after the target word aligned with the word before it. The pieces keep their glue:
   no space where the source had none. Placeholder-like strings that the model produced
   on its own are taken out first, so every placeholder of the input appears exactly once.
3. Tags stay balanced: an opening tag and its closing tag are paired in the source; paired
   tags keep their source order, and nothing inside a pair is put back before its opening
   tag nor after its closing tag (ties keep the source order), so an opening tag never
   comes after its closing tag and pairs never cross. Unpaired tags are placed as atoms.

A text without any placeholder is translated exactly as before (byte-identical). A text that
is nothing but placeholders and spaces is not translated: its translation is the text
itself, with no tokens and a score of 0.

The model never sees the placeholders (this release masks by removal; a model whose
vocabulary holds placeholder symbols is not yet used that way), so each one is re-inserted
by alignment and counted in `PlaceholderReport.reinserted`.

Example:
    >>> masked = Placeholders().mask("Delete <b>%1</b> files?")
    >>> masked.text, [p.value for p in masked.items]
    ('Delete files?', ['<b>', '%1', '</b>'])
    >>> import numpy as np
    >>> soft = np.array([[1.0, 0.0], [0.0, 1.0]])  # "¿Borrar" <- "Delete", "archivos?" <- "files?"
    >>> restored = Placeholders().restore(masked, "¿Borrar archivos?", soft)
    >>> restored.text
    '¿Borrar <b>%1</b> archivos?'
"""

import dataclasses
import re

import numpy as np

from seq2seq_attn.alignment import word_alignment
from seq2seq_attn.interface import Translation

ATOM, OPEN, CLOSE = "atom", "open", "close"
VOID_TAGS = frozenset({"br", "hr", "img", "input", "wbr", "meta", "link", "area", "col"})


@dataclasses.dataclass(frozen=True)
class Pattern:
    """One kind of placeholder.

    Attributes:
        name: a short name (shown in docs and errors).
        regex: a Python regular expression for one placeholder.
        tag: True for XML/HTML tags: `<x ...>` opens, `</x>` closes, `<x/>` and the HTML
            void elements (`<br>`) stand alone.
    """

    name: str
    regex: str
    tag: bool = False


PRINTF = Pattern(
    "printf",
    r"%%|%(?:\d+\$)?[-+0#]*(?:\d+|\*)?(?:\.(?:\d+|\*))?(?:hh|h|ll|l|L|z|j|t|q)?"
    r"[diouxXeEfFgGaAcsp@]|%\d+",
)
BRACES = Pattern("braces", r"\{[A-Za-z0-9_][\w.:-]*\}")
DOLLAR = Pattern("dollar", r"\$\([A-Za-z_][\w.]*\)|\$\{[A-Za-z_][\w.]*\}")
TAG = Pattern(
    "tag",
    r"</?[A-Za-z][\w:.-]*(?:\s+[\w:.-]+(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s\"'>]+))?)*\s*/?>",
    tag=True,
)
ENTITY = Pattern("entity", r"&(?:[A-Za-z][A-Za-z0-9]*|#\d+|#[xX][0-9A-Fa-f]+);")
DEFAULT_PATTERNS = (PRINTF, BRACES, DOLLAR, TAG, ENTITY)
# A custom pattern, not on by default: an accelerator marker, `&` or `~` before a letter at
# the start of a word ("&File", "Save ~As"), never the `&` inside "Q&A".
ACCELERATOR = Pattern("accelerator", r"(?<![\w&~])[&~](?=[^\W\d_])")


@dataclasses.dataclass(frozen=True)
class Item:
    """One placeholder found in a text.

    Attributes:
        value: its text, put back verbatim.
        kind: "atom", "open" or "close".
        name: the tag name, lower-cased (for tags), else "".
        before: the index of the masked text's word before it, or None.
        after: the index of the masked text's word after it, or None.
        glue_left, glue_right: no space between it and what precedes / follows it.
        word_next: glued to a letter or digit that follows it (not to punctuation).
        punct_next: the closing punctuation mark glued after it (`,` in "{name}, you"), or "".
        pair: for a paired tag, the index (in `Masked.items`) of its partner, else None.
    """

    value: str
    kind: str
    name: str
    before: int | None
    after: int | None
    glue_left: bool
    glue_right: bool
    pair: int | None = None
    word_next: bool = False
    punct_next: str = ""


@dataclasses.dataclass(frozen=True)
class Masked:
    """A text with its placeholders taken out.

    Attributes:
        source: the text as given.
        text: what the model translates: the text without placeholders, spaces collapsed
            where a placeholder stood between two spaces, ends stripped when a
            placeholder stood there. The source itself when there is no placeholder.
        items: the placeholders in source order.
    """

    source: str
    text: str
    items: tuple

    @property
    def only_placeholders(self):
        """True when nothing is left to translate (the text is its own translation)."""
        return bool(self.items) and not self.text.strip()


@dataclasses.dataclass
class PlaceholderReport:
    """What restoring did to one hypothesis (the output's metadata).

    Attributes:
        count: placeholders of the input (each is in the output exactly once).
        reinserted: those put back by alignment because the model's output lacked them
            (all of them while placeholders are masked by removal).
        removed: placeholder-like strings the model produced itself, taken out.
        positions: per placeholder (source order), the target word index it went before.
    """

    count: int
    reinserted: int
    removed: int
    positions: list


@dataclasses.dataclass
class Restored:
    """A translation with its placeholders put back, and the report."""

    text: str
    report: PlaceholderReport


class Placeholders:
    """A configured set of placeholder patterns.

    Args:
        patterns: `Pattern`s, tried in order at each position (the first match wins, so
            put longer forms first); default `DEFAULT_PATTERNS`.

    Raises:
        ValueError: a pattern that does not compile or matches the empty string.
    """

    def __init__(self, patterns=DEFAULT_PATTERNS):
        self.patterns = tuple(patterns)
        parts = []
        for i, pattern in enumerate(self.patterns):
            try:
                compiled = re.compile(pattern.regex)
            except re.error as error:
                raise ValueError(
                    f"placeholder pattern {pattern.name!r} does not compile: {error}"
                ) from None
            if compiled.fullmatch(""):
                raise ValueError(f"placeholder pattern {pattern.name!r} matches the empty string")
            parts.append(f"(?P<p{i}>{pattern.regex})")
        self._regex = re.compile("|".join(parts)) if parts else None

    def find(self, text):
        """`(start, end, Pattern)` of every placeholder in `text`, left to right."""
        if self._regex is None:
            return []
        return [
            (m.start(), m.end(), self.patterns[int(m.lastgroup[1:])])
            for m in self._regex.finditer(text)
        ]

    def mask(self, text):
        """The `Masked` form of `text` (see the module docstring)."""
        found = self.find(text)
        if not found:
            return Masked(text, text, ())
        segments, at = [], 0  # segments[i]: the text before placeholder i (after i - 1)
        for start, end, _ in found:
            segments.append(text[at:start])
            at = end
        segments.append(text[at:])
        for i in range(1, len(segments)):  # "Hello {name}, you" -> "Hello, you"
            if segments[i][:1] in _CLOSING_PUNCTUATION and segments[i][:1]:
                segments[i - 1] = segments[i - 1].rstrip(" ")
        masked = _collapse("".join(segments))
        return Masked(text, masked, _items(text, masked, found, segments))

    def restore(self, masked, translation, soft=None, prefix=None):
        """`Restored`: `translation` (of `masked.text`) with `masked`'s placeholders back.

        Args:
            masked: what `mask` returned for the source.
            translation: the model's output text.
            soft: float `(target words, source words)`, the soft word alignment between
                `translation` and `masked.text` (`WordAlignment.soft`); None, or a shape
                that does not match the words, places by relative position instead.
            prefix: the forced target prefix, if any: left verbatim, placeholders go after
                its words, and one the prefix already holds is not put in again.
        """
        if not masked.items:  # nothing was taken out: the translation as it is
            return Restored(translation, PlaceholderReport(0, 0, 0, []))
        cleaned, removed = self._without_placeholders(translation, prefix)
        if masked.only_placeholders and not prefix:  # its own translation
            return Restored(masked.source, PlaceholderReport(len(masked.items), 0, removed, []))
        spans = _word_spans(cleaned)
        first = len(prefix.split()) if prefix else 0
        slots = _slots(masked, len(spans), soft, first)
        wanted = _not_in_prefix(masked.items, prefix)
        text = _insert(cleaned, spans, masked.items, slots, wanted, prefix)
        report = PlaceholderReport(len(masked.items), sum(wanted), removed, slots)
        return Restored(text, report)

    def _without_placeholders(self, translation, prefix):
        """The model's text without placeholder-like strings of its own (outside the prefix,
        which stays verbatim), and how many were taken out."""
        head = prefix if prefix and translation.startswith(prefix) else ""
        found = self.find(translation[len(head) :])
        if not found:
            return translation, 0
        body = translation[len(head) :]
        kept, at = [], 0
        for start, end, _ in found:
            kept.append(body[at:start])
            at = end
        kept.append(body[at:])
        body = re.sub(r"  +", " ", "".join(kept)).rstrip()
        return head + (body if head else body.lstrip()), len(found)


DEFAULT = Placeholders()
_CLOSING_PUNCTUATION = frozenset(",.;:!?)]}\u3001\u3002")


def _collapse(text):
    """Runs of spaces left by a removed placeholder become one; the ends are stripped."""
    return re.sub(r"  +", " ", text).strip()


def _word_spans(text):
    """`(start, end)` of each word of `text`: runs of characters other than " "."""
    return [m.span() for m in re.finditer(r"[^ ]+", text)]


def _items(text, masked, found, segments):
    """The `Item`s of `found` `(start, end, pattern)`, tags paired."""
    n_words = len(_word_spans(masked))
    items = []
    for i, (start, end, pattern) in enumerate(found):
        left, right = "".join(segments[: i + 1]), "".join(segments[i + 1 :])
        words_before = len(_word_spans(_collapse(left)))
        # a word cut by placeholders ("file%1name") is one word of the masked text
        inside = left[-1:].strip() != "" and right[:1].strip() != ""
        before = words_before - 1 if words_before else None
        after = words_before - 1 if inside else words_before
        after = after if 0 <= after < n_words else None
        kind, name = _tag_kind(text[start:end]) if pattern.tag else (ATOM, "")
        glue_left = start > 0 and not text[start - 1].isspace()
        glue_right = end < len(text) and not text[end].isspace()
        word_next = end < len(text) and text[end].isalnum()
        item = Item(text[start:end], kind, name, before, after, glue_left, glue_right)
        punct = text[end] if end < len(text) and text[end] in _CLOSING_PUNCTUATION else ""
        items.append(dataclasses.replace(item, word_next=word_next, punct_next=punct))
    return tuple(_pair_tags(items))


def _tag_kind(value):
    """`(kind, lower-cased name)` of a tag (a custom tag pattern's odd match: an atom)."""
    match = re.match(r"</?([A-Za-z][\w:.-]*)", value)
    if match is None:
        return ATOM, ""
    name = match.group(1).lower()
    if value.startswith("</"):
        return CLOSE, name
    if value.endswith("/>") or name in VOID_TAGS:
        return ATOM, name
    return OPEN, name


def _pair_tags(items):
    """`items` with each closing tag paired to the latest unclosed opening tag of its name;
    unpaired tags become atoms."""
    pairs, stack = {}, []
    for i, item in enumerate(items):
        if item.kind == OPEN:
            stack.append(i)
        elif item.kind == CLOSE:
            match = next((j for j in reversed(stack) if items[j].name == item.name), None)
            if match is not None:
                del stack[stack.index(match) :]
                pairs[i], pairs[match] = match, i
    out = []
    for i, item in enumerate(items):
        kind = item.kind if i in pairs else ATOM
        out.append(dataclasses.replace(item, kind=kind, pair=pairs.get(i)))
    return out


def _aligned(soft, source_word, n_target):
    """The target word that puts most weight on `source_word`."""
    return int(np.argmax(soft[:, source_word])) if n_target else 0


def _slot(item, soft, n_source, n_target):
    """The target word index `item` goes before (0..n_target): before the target word
    aligned with the source word after it (an opening tag, a placeholder glued only to the
    next word, or one with no word before it), else after the one aligned with the word
    before it. Without a usable alignment, by relative position."""
    if n_target == 0:
        return 0
    glued_next = item.word_next and not item.glue_left
    to_next = item.after is not None and (item.before is None or item.kind == OPEN or glued_next)
    if to_next:
        if soft is None:
            return int(round(item.after * n_target / max(n_source, 1)))
        return _aligned(soft, item.after, n_target)
    if item.before is None:
        return 0
    if soft is None:
        return int(round((item.before + 1) * n_target / max(n_source, 1)))
    return _aligned(soft, item.before, n_target) + 1


def _slots(masked, n_target, soft, first=0):
    """Per item, its target slot, nested pairs kept balanced (see the module docstring)."""
    n_source = len(_word_spans(masked.text))
    if soft is not None:
        soft = np.asarray(soft, np.float64)
        if soft.shape != (n_target, n_source):
            soft = None
    slots = [max(first, _slot(item, soft, n_source, n_target)) for item in masked.items]
    stack, last_tag = [], 0
    for i, item in enumerate(masked.items):
        if stack:  # nothing inside a pair goes before its opening tag
            slots[i] = max(slots[i], slots[stack[-1]])
        if item.kind in (OPEN, CLOSE):  # paired tags keep their source order
            slots[i] = last_tag = max(slots[i], last_tag)
        if item.kind == CLOSE and stack and stack[-1] == item.pair:
            slots[i] = last_tag = max(slots[item.pair : i + 1])  # nor after its closing tag
            stack.pop()
        elif item.kind == OPEN:
            stack.append(i)
    return slots


def _not_in_prefix(items, prefix):
    """Per item, whether to insert it: not when the prefix already holds that occurrence."""
    left = {}
    for value in re.findall("|".join(map(re.escape, {i.value for i in items})), prefix or ""):
        left[value] = left.get(value, 0) + 1
    wanted = []
    for item in items:
        wanted.append(left.get(item.value, 0) == 0)
        if not wanted[-1]:
            left[item.value] -= 1
    return wanted


def _insert(text, spans, items, slots, wanted, prefix):
    """`text` with each wanted item inserted before target word `slots[i]`, glued as in
    the source; the rest of `text` unchanged."""
    groups = {}
    for i, item in enumerate(items):
        if wanted[i]:
            groups.setdefault(slots[i], []).append(item)
    out, at = [], 0
    for slot in sorted(groups):
        group, left_word, right_word = groups[slot], slot > 0, slot < len(spans)
        left = spans[slot - 1][1] if left_word else 0  # the end of the word before
        right = spans[slot][0] if right_word else len(text)  # the start of the word after
        gap = text[left:right]  # the space between them (or the text's leading/trailing)
        sep = gap or " "
        glue_left = group[0].glue_left and left_word and not _ends_prefix(prefix, left)
        glue_right = group[-1].word_next and right_word
        if left_word and group[-1].punct_next and text[left - 1] == group[-1].punct_next:
            left -= 1  # "Hello {name}," -> "Hola {name}," (before the same punctuation)
            out += [text[at:left], ("" if glue_left else " ") + _join(group)]
            at = left
            continue
        joined = _join(group)
        if glue_left:
            middle = joined + (sep if right_word else gap)
        elif glue_right:
            middle = (sep if left_word else gap) + joined
        else:
            middle = (sep if left_word else gap) + joined + (" " if right_word else "")
        out += [text[at:left], middle]
        at = right
    out.append(text[at:])
    return "".join(out)


def _ends_prefix(prefix, offset):
    """Whether gluing at `offset` would cut the prefix's own trailing space."""
    return bool(prefix) and prefix[-1:].isspace() and offset < len(prefix)


def _join(group):
    """The items of one slot in source order, a space between two unless glued."""
    parts = [group[0].value]
    for prev, item in zip(group, group[1:], strict=False):
        parts.append(("" if prev.glue_right or item.glue_left else " ") + item.value)
    return "".join(parts)


# --- on `Translation`s: what the translator and the server share ---------------------------


def resolve(placeholders):
    """`placeholders` as a `Placeholders` or None: True for the defaults, False or None for
    off, a `Placeholders` as it is, a sequence of `Pattern`s for those."""
    if placeholders is True:
        return DEFAULT
    if placeholders is None or placeholders is False:
        return None
    if isinstance(placeholders, Placeholders):
        return placeholders
    return Placeholders(placeholders)


def verbatim(masked, placeholders, prefix=None, n_best=None):
    """The `Translation` of a text that is only placeholders: not decoded; its text is the
    source (or, with a prefix, the prefix and the placeholders it lacks), no tokens, score 0."""
    restored = placeholders.restore(masked, prefix or "", None, prefix)

    def one():
        return Translation(
            tokens=np.zeros([0], np.int32),
            score=0.0,
            attention=np.zeros([0, 0], np.float32),
            source_ids=np.zeros([0], np.int32),
            source=masked.source,
            text=restored.text,
            source_tokens=[],
            target_tokens=[],
            token_log_probs=np.zeros([0], np.float32),
            placeholders=restored.report,
        )

    result = one()
    result.nbest = None if n_best is None else [one()]
    return result


def restore_result(placeholders, masked, result, prefix=None):
    """Puts `masked`'s placeholders back into `result` and its n-best list (their `text`,
    aligned by their attention and piece strings); sets `source` and `placeholders`."""
    if not masked.items:
        return result
    for one in [result, *(result.nbest or [])]:
        soft = None
        if one.source_tokens is not None and one.target_tokens is not None:
            soft = word_alignment(one.attention, one.source_tokens, one.target_tokens).soft
        restored = placeholders.restore(masked, one.text, soft, prefix)
        one.source, one.text, one.placeholders = masked.source, restored.text, restored.report
    return result


def translate_protected(
    decode, texts, placeholders, prefixes=None, n_best=None, alignment=None, scores=False
):
    """`decode(texts, prefixes)` (-> `Translation`s with `text`, `attention` and piece
    strings) with the placeholders of `texts` taken out and put back. With no placeholder
    in any text, exactly `decode(texts, prefixes)`; texts that are only placeholders are
    not decoded (`verbatim`, with `alignment` and `scores` as `Translation.with_words`)."""
    masks = [placeholders.mask(text) for text in texts]
    if not any(m.items for m in masks):
        return decode(texts, prefixes)
    prefixes = list(prefixes) if prefixes is not None else None
    todo = [i for i, m in enumerate(masks) if not m.only_placeholders]
    decoded = {}
    if todo:
        chosen = None if prefixes is None else [prefixes[i] for i in todo]
        outputs = decode([masks[i].text for i in todo], chosen)
        decoded = dict(zip(todo, outputs, strict=True))
    results = []
    for i, masked in enumerate(masks):
        prefix = None if prefixes is None else prefixes[i]
        if i in decoded:
            results.append(restore_result(placeholders, masked, decoded[i], prefix))
        else:
            one = verbatim(masked, placeholders, prefix, n_best)
            results.append(one.with_words(alignment, scores))
    return results
