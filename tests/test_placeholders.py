"""Placeholders and markup: found, taken out, put back once by alignment, tags balanced."""

import collections
import re

import numpy as np
import pytest

from seq2seq_attn.placeholders import (
    ACCELERATOR,
    DEFAULT_PATTERNS,
    Pattern,
    Placeholders,
    resolve,
)

DEFAULT = Placeholders()
WITH_ACCELERATORS = Placeholders(DEFAULT_PATTERNS + (ACCELERATOR,))

# Shapes of real UI strings (gettext, Qt, .NET, Android, HTML resources); the hard cases
# named: adjacent placeholders, first/last, nested tags, only a placeholder, `%%`.
UI_STRINGS = [
    "Delete <b>%1</b> files?",
    "Hello {name}, you have %d new messages.",
    "%1$s of %2$s downloaded",
    "Battery at 100%% - unplug the charger",
    "Open $(ProjectDir) in a new window",
    "{0}{1} selected",
    '<a href="https://example.org"><i>Read</i> the <b>terms</b></a> first.',
    "Line one<br/>line two &amp; three",
    "%s",
    "<b></b>",
    "Saved to %s.",
    "Q&A &lt;beta&gt; %%d",
    "<b><i>Bold italic</i></b> and %1%2%3",
    "Press <kbd>Ctrl</kbd>+<kbd>S</kbd> to save<br>or {action}",
]


def values(placeholders, text):
    return collections.Counter(text[start:end] for start, end, _ in placeholders.find(text))


def balanced(text):
    """Every closing tag closes the latest open tag of its name (void/self-closing aside)."""
    stack = []
    for match in re.finditer(r"<(/?)([A-Za-z][\w:.-]*)[^>]*?(/?)>", text):
        closing, name, self_closing = match.groups()
        if self_closing or name.lower() in ("br", "hr", "img"):
            continue
        if not closing:
            stack.append(name)
        elif not stack or stack.pop() != name:
            return False
    return not stack


def random_soft(rng, n_target, n_source):
    soft = rng.random([n_target, n_source]) ** 4  # peaked rows, like attention
    return soft / soft.sum(axis=1, keepdims=True)


@pytest.mark.parametrize(
    "text, found",
    [
        ("%s %d %1$s %1 %.2f %%", ["%s", "%d", "%1$s", "%1", "%.2f", "%%"]),
        ("{name} {0} {user.id}", ["{name}", "{0}", "{user.id}"]),
        ("$(ARG) ${HOME}", ["$(ARG)", "${HOME}"]),
        ('<b>x</b> <br/> <a href="y">', ["<b>", "</b>", "<br/>", '<a href="y">']),
        ("&amp; &#169; &#x00A9;", ["&amp;", "&#169;", "&#x00A9;"]),
        ("Q&A, 50 % off, 50 % de remise, {} and 3<4", []),
        ("%%d", ["%%"]),  # a literal percent, then the letter d
    ],
)
def test_default_patterns_find(text, found):
    assert list(values(DEFAULT, text).elements()) == found


def test_accelerator_is_a_custom_pattern_and_not_q_and_a():
    assert not values(DEFAULT, "&File")
    assert list(values(WITH_ACCELERATORS, "&File, Save ~As, Q&A, &amp;").elements()) == [
        "&",
        "~",
        "&amp;",
    ]


@pytest.mark.parametrize("text", UI_STRINGS)
def test_every_placeholder_comes_back_once_and_tags_balance(text):
    """Whatever the alignment, each placeholder once, tags balanced, the words kept."""
    rng = np.random.default_rng(0)
    masked = DEFAULT.mask(text)
    assert not values(DEFAULT, masked.text)  # the model sees none of them
    for n_target in (0, 1, 3, 7):
        translation = " ".join(f"w{i}" for i in range(n_target))
        n_source = len(masked.text.split())
        for _ in range(5):
            soft = random_soft(rng, n_target, n_source) if n_source else None
            restored = DEFAULT.restore(masked, translation, soft)
            assert values(DEFAULT, restored.text) == values(DEFAULT, text), restored.text
            assert balanced(restored.text), restored.text
            if not masked.only_placeholders:
                assert re.findall(r"w\d+", restored.text) == translation.split()
            assert restored.report.count == sum(values(DEFAULT, text).values())


def test_random_strings_keep_every_placeholder_once():
    """Seeded random mixes of placeholders, words, punctuation and white space."""
    rng = np.random.default_rng(1)
    parts = ["%s", "%1", "%%", "{x}", "<b>", "</b>", "<i>", "</i>", "<br/>", "&amp;", "$(A)"]
    parts += ["word", "Q&A", "50 %", ",", " ", " ", "  ", "\t", "é"]
    for _ in range(300):
        text = "".join(rng.choice(parts, size=rng.integers(1, 12)))
        masked = DEFAULT.mask(text)
        n_source = len(masked.text.split(" ")) if masked.text else 0
        for n_target in (0, 2, 5):
            translation = " ".join(f"w{i}" for i in range(n_target))
            soft = random_soft(rng, n_target, n_source) if n_source and n_target else None
            restored = DEFAULT.restore(masked, translation, soft)
            assert values(DEFAULT, restored.text) == values(DEFAULT, text), (text, restored)
            if balanced(text):
                assert balanced(restored.text), (text, restored.text)


def test_placement_follows_the_alignment():
    masked = DEFAULT.mask("File %1 not found")  # "%1" after "File"
    soft = np.eye(3)[[2, 1, 1, 0]]  # No<-found se<-not encontró<-not archivo<-File
    restored = DEFAULT.restore(masked, "No se encontró archivo", soft)
    assert restored.text == "No se encontró archivo %1"
    assert restored.report.positions == [4] and restored.report.reinserted == 1

    masked = DEFAULT.mask("Delete <b>%1</b> files?")
    restored = DEFAULT.restore(masked, "¿Borrar archivos?", np.eye(2))
    assert restored.text == "¿Borrar <b>%1</b> archivos?"
    masked = DEFAULT.mask("Hello {name}, the king has %d sons.")  # glued to punctuation
    restored = DEFAULT.restore(masked, "Hola, el rey tiene hijos.", np.eye(5))
    assert restored.text == "Hola {name}, el rey tiene %d hijos."
    restored = DEFAULT.restore(DEFAULT.mask("Saved to %s."), "Guardado en.", np.eye(2))
    assert restored.text == "Guardado en %s."
    masked = DEFAULT.mask("<b>Save</b> now")  # glue kept: no space inside the tags
    assert DEFAULT.restore(masked, "Guardar ya", np.eye(2)).text == "<b>Guardar</b> ya"


def test_crossing_alignment_keeps_tags_balanced_and_nested():
    masked = DEFAULT.mask("<i>a <b>b</b> c</i> d")
    soft = np.eye(4)[[3, 2, 1, 0]]  # reversed order: each tag's own slot would cross
    restored = DEFAULT.restore(masked, "D C B A", soft)
    assert balanced(restored.text) and values(DEFAULT, restored.text) == values(
        DEFAULT, "<i>a <b>b</b> c</i> d"
    )
    assert restored.text.index("<i>") < restored.text.index("<b>")
    assert restored.text.index("</b>") < restored.text.index("</i>")


def test_text_without_placeholders_is_untouched():
    masked = DEFAULT.mask("In the beginning God created the heaven")
    assert masked.text == masked.source and masked.items == ()
    restored = DEFAULT.restore(masked, "En el <b>principio</b>  %s", None)  # even the model's
    assert restored.text == "En el <b>principio</b>  %s" and restored.report.count == 0


def test_placeholders_the_model_made_are_taken_out():
    masked = DEFAULT.mask("Delete %1 files")
    restored = DEFAULT.restore(masked, "Borrar %s <b>archivos", np.eye(2)[[0, 1]])
    assert restored.text == "Borrar %1 archivos" and restored.report.removed == 2


def test_only_placeholders_is_its_own_translation():
    for text in ("%s", "<b></b>", "{0} {1}", " <br/> "):
        masked = DEFAULT.mask(text)
        assert masked.only_placeholders
        assert DEFAULT.restore(masked, "anything", None).text == text


def test_only_placeholders_with_a_prefix_is_the_prefix_and_the_rest():
    masked = DEFAULT.mask("%s <br/>")
    assert DEFAULT.restore(masked, "Hola", None, prefix="Hola").text == "Hola %s <br/>"
    assert DEFAULT.restore(masked, "Hola %s", None, prefix="Hola %s").text == "Hola %s <br/>"
    assert DEFAULT.restore(masked, "Hola ", None, prefix="Hola ").text == "Hola %s <br/>"


def test_prefix_stays_verbatim_and_is_not_doubled():
    masked = DEFAULT.mask("Delete %1 files")
    restored = DEFAULT.restore(masked, "Eliminar los archivos", np.eye(3, 2), prefix="Eliminar ")
    assert restored.text.startswith("Eliminar ") and values(DEFAULT, restored.text) == {"%1": 1}
    # the prefix already holds %1: not put in again
    restored = DEFAULT.restore(masked, "Eliminar %1 archivos", np.eye(3, 2), prefix="Eliminar %1")
    assert restored.text == "Eliminar %1 archivos" and restored.report.reinserted == 0


def test_without_an_alignment_places_by_position():
    masked = DEFAULT.mask("one two %s three four")
    restored = DEFAULT.restore(masked, "uno dos tres cuatro", None)
    assert restored.text == "uno dos %s tres cuatro"


@pytest.mark.parametrize("regex, match", [("(", "does not compile"), ("x*", "empty string")])
def test_bad_patterns(regex, match):
    with pytest.raises(ValueError, match=match):
        Placeholders([Pattern("bad", regex)])


def test_resolve():
    assert resolve(True) is not None and resolve(False) is None and resolve(None) is None
    assert resolve(WITH_ACCELERATORS) is WITH_ACCELERATORS
    assert resolve([ACCELERATOR]).patterns == (ACCELERATOR,)


# --- the library, the command line: the tiny trained model and the pretrained one ----------

TINY_STRINGS = [
    "Due <b>3 March 2021</b>",
    "%1 december 25, 1999 {when}",
    "<i>1 jan 2000</i>&amp;%%",
    "{0}",
]
PLAIN = ["3 March 2021", "december 25, 1999", "1 jan 2000"]


@pytest.fixture(scope="module")
def translator(tiny_run):
    from seq2seq_attn.translator import Translator

    return Translator.load(tiny_run)


def check_outputs(sources, results):
    for source, result in zip(sources, results, strict=True):
        for one in [result, *(result.nbest or [])]:
            assert values(DEFAULT, one.text) == values(DEFAULT, source), (source, one.text)
            assert balanced(one.text), one.text
            assert one.placeholders.count == sum(values(DEFAULT, source).values())
            assert one.source == source


@pytest.mark.parametrize(
    "options", [dict(), dict(beam_width=3, n_best=2, alignment="hard", scores=True)]
)
def test_library_puts_every_placeholder_back(translator, options):
    results = translator.translate(TINY_STRINGS, **options)
    check_outputs(TINY_STRINGS, results)
    assert results[3].text == "{0}" and results[3].tokens.size == 0  # only a placeholder
    plain = translator.translate([DEFAULT.mask(t).text for t in TINY_STRINGS[:3]], **options)
    for result, raw in zip(results[:3], plain, strict=True):  # the same decode, put back
        assert DEFAULT.mask(result.text).text == DEFAULT.mask(raw.text).text
        np.testing.assert_array_equal(result.tokens, raw.tokens)
        if "alignment" in options:
            assert result.alignment.pharaoh() == raw.alignment.pharaoh()


def test_library_text_without_placeholders_is_byte_identical(translator):
    for options in [dict(), dict(beam_width=2, n_best=2, scores=True)]:
        on = translator.translate(PLAIN, **options)
        off = translator.translate(PLAIN, placeholders=False, **options)
        assert [r.text for r in on] == [r.text for r in off]
        assert [r.score for r in on] == [r.score for r in off]
        assert all(r.placeholders is None for r in on)


def test_library_off_translates_the_markup_as_text(translator):
    (off,) = translator.translate(TINY_STRINGS[:1], placeholders=False)
    assert off.placeholders is None and off.source == TINY_STRINGS[0]


def test_pretrained_model_ui_strings(tmp_path):
    from seq2seq_attn.alignment import parse_pharaoh
    from seq2seq_attn.commands import PRETRAINED_DIR
    from seq2seq_attn.translator import Translator

    translator = Translator.load(PRETRAINED_DIR)
    sources = [s for s in UI_STRINGS if not DEFAULT.mask(s).only_placeholders]
    results = translator.translate(sources, beam_width=2, alignment="hard")
    check_outputs(sources, results)
    for source, result in zip(sources, results, strict=True):
        pairs = parse_pharaoh(result.alignment.pharaoh())  # of the masked text's words
        assert all(s < len(DEFAULT.mask(source).text.split()) for s, _ in pairs)


def cli(argv, monkeypatch, capsys):
    from seq2seq_attn.cli import main

    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_on_by_default_and_no_placeholders(tiny_run, translator, monkeypatch, capsys):
    text = TINY_STRINGS[0]
    code, out, err = cli(["translate", str(tiny_run), text], monkeypatch, capsys)
    assert code == 0, err
    assert out.rstrip("\n") == translator.translate([text])[0].text
    argv = ["translate", str(tiny_run), text, "--no-placeholders"]
    code, out, err = cli(argv, monkeypatch, capsys)
    assert code == 0, err
    assert out.rstrip("\n") == translator.translate([text], placeholders=False)[0].text
    argv = ["translate", str(tiny_run), "&File 3 March 2021", "--placeholder-pattern", "&(?=\\w)"]
    code, out, err = cli(argv, monkeypatch, capsys)
    assert code == 0 and out.count("&") == 1, (out, err)


@pytest.mark.parametrize(
    "extra, match",
    [
        (["--placeholder-pattern", "("], "does not compile"),
        (["--no-placeholders", "--placeholder-pattern", "x"], "not both"),
    ],
)
def test_cli_bad_placeholder_arguments(tiny_run, extra, match, monkeypatch, capsys):
    code, _, err = cli(["translate", str(tiny_run), "3 March 2021", *extra], monkeypatch, capsys)
    assert code == 2 and match in err, err


def test_imports_no_tensorflow():
    import subprocess
    import sys

    code = (
        "import sys, seq2seq_attn.placeholders\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
