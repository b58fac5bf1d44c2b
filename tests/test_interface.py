"""The helpers every decoding path shares: the options and their checks, the length rule."""

import math

import numpy as np
import pytest

from seq2seq_attn.errors import UserError
from seq2seq_attn.interface import (
    DEFAULT_MAX_LENGTH_RATIO,
    MAX_LENGTH_RATIO_LIMIT,
    MAX_SEED,
    MAX_TEMPERATURE,
    MIN_TEMPERATURE,
    BadOption,
    DecodeOptions,
    Translation,
    check_max_length,
    max_length_for,
    parse_sample,
)


@pytest.mark.parametrize(
    "source_length, ratio, offset, expected",
    [
        (12, 2, 10, 34),  # the default, 2 * 12 + 10
        (7, 1.5, 3, 13),  # 10.5 + 3 -> 13
        (10, 0.7, 0, 7),  # 0.7 * 10 is 7.000000000000001 in float64: floor 7
        (10, 0.3, 0, 3),  # 3.0000000000000004 -> 3
        (9, 0, 5, 5),
        (4, 2.0, 1, 9),  # a whole float ratio takes the integer path
        (0, 3.5, 0, 0),
    ],
)
def test_max_length_for(source_length, ratio, offset, expected):
    options = DecodeOptions(max_length_ratio=ratio, max_length_offset=offset).check()
    assert max_length_for(source_length, options) == expected
    assert options.max_length(source_length) == expected


def test_max_length_for_keeps_its_old_form_with_a_warning():
    with pytest.warns(DeprecationWarning, match="max_length_for"):
        assert max_length_for(7, 1.5, 3) == 13
    with pytest.warns(DeprecationWarning, match="max_length_for"):
        assert max_length_for(12, ratio=1.5, offset=2) == 20
    assert max_length_for(12) == max_length_for(12, DecodeOptions()) == 34


def test_old_constant_name_warns_and_keeps_its_value():
    import seq2seq_attn.interface as interface

    with pytest.warns(DeprecationWarning, match="DEFAULT_MAX_LENGTH_RATIO"):
        assert interface.MAX_LENGTH_RATIO == DEFAULT_MAX_LENGTH_RATIO == 2
    with pytest.raises(AttributeError):
        interface.NO_SUCH_NAME  # noqa: B018


def test_defaults_are_greedy_with_the_old_length_rule():
    options = DecodeOptions().check()
    assert (options.beam_width, options.n_best, options.sampling) == (1, 1, False)
    assert [options.max_length(n) for n in (0, 1, 30)] == [10, 12, 70]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(beam_width=0), "beam_width=0"),
        (dict(beam_width=True), "beam_width=True"),
        (dict(beam_width=2.0), "beam_width=2.0"),
        (dict(beam_width=4, n_best=5), r"n_best=5.*beam width \(4\)|beam width \(4\).*n_best=5"),
        (dict(n_best=0), "n_best=0"),
        (dict(n_best=2), "n_best=2"),  # beam width 1
        (dict(max_length_ratio=-1), "max_length_ratio=-1"),
        (dict(max_length_ratio=MAX_LENGTH_RATIO_LIMIT + 0.5), "from 0 to 100.*=100.5"),
        (dict(max_length_ratio=math.inf), "max_length_ratio=inf"),
        (dict(max_length_ratio=math.nan), "max_length_ratio=nan"),
        (dict(max_length_offset=-1), "max_length_offset=-1"),
        (dict(max_length_offset=1.5), "max_length_offset=1.5"),
        (dict(no_repeat_ngram=0), "no_repeat_ngram=0"),
        (dict(no_repeat_ngram=-2), "no_repeat_ngram=-2"),
        (dict(no_repeat_ngram=2.0), "no_repeat_ngram=2.0"),
        (dict(top_k=0), "top_k=0"),
        (dict(top_p=0.0), "top_p=0.0"),
        (dict(top_p=1.5), "top_p=1.5"),
        (dict(top_p=-0.1), "top_p=-0.1"),
        (dict(top_p=math.nan), "top_p=nan"),
        (dict(top_k=3, top_p=0.5), "top_p=0.5"),
        (dict(top_k=3, temperature=0.0), "temperature=0.0"),
        (dict(top_k=3, temperature=-1.0), "temperature=-1.0"),
        (dict(top_k=3, temperature=math.nan), "temperature=nan"),
        (dict(top_k=3, temperature=MIN_TEMPERATURE / 2), "from 0.01 to 100.*=0.005"),
        (dict(top_k=3, temperature=MAX_TEMPERATURE + 1), "from 0.01 to 100.*=101"),
        (dict(temperature=0.5), "temperature=0.5"),  # no sampling
        (dict(top_k=3, beam_width=4), "beam_width=4"),
        (dict(top_p=0.9, seed=-1), "seed=-1"),
        (dict(top_p=0.9, seed=MAX_SEED + 1), f"seed={MAX_SEED + 1}"),
        (dict(length_penalty=-0.5), "length_penalty=-0.5"),
        (dict(coverage_penalty=math.nan), "coverage_penalty=nan"),
    ],
)
def test_bad_values_name_themselves(kwargs, match):
    with pytest.raises(BadOption, match=match) as caught:
        DecodeOptions(**kwargs).check()
    # one type every channel maps: a ValueError for the library, a UserError for the CLI
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, UserError)
    assert caught.value.option in str(caught.value)


def test_the_message_names_option_value_and_range():
    with pytest.raises(BadOption) as caught:
        DecodeOptions(beam_width=9).check(max_beam_width=8)
    error = caught.value
    assert (
        str(error)
        == "`beam_width` must be at most 8 (the widest beam here), received: beam_width=9"
    )
    assert (error.option, error.value, error.conflict) == ("beam_width", 9, False)
    with pytest.raises(BadOption) as caught:
        DecodeOptions(beam_width=4, n_best=5).check()
    assert caught.value.conflict and caught.value.option == "n_best"


def test_the_widest_beam_is_allowed():
    assert DecodeOptions(beam_width=8, n_best=8).check(max_beam_width=8).beam_width == 8


@pytest.mark.parametrize("bound", [0, MAX_LENGTH_RATIO_LIMIT])
def test_ratio_bounds_are_inclusive(bound):
    assert DecodeOptions(max_length_ratio=bound).check().max_length(3) == bound * 3 + 10


@pytest.mark.parametrize("bound", [MIN_TEMPERATURE, MAX_TEMPERATURE])
def test_temperature_bounds_are_inclusive(bound):
    assert DecodeOptions(top_k=2, temperature=bound).check().temperature == bound


@pytest.mark.parametrize(
    "value, least, most, ok",
    [(None, 1, 300, True), (0, 0, None, True), (300, 1, 300, True), (0, 1, 300, False),
     (301, 1, 300, False), (-1, 0, None, False), (2.0, 0, None, False), (True, 0, None, False)],
)  # fmt: skip
def test_check_max_length(value, least, most, ok):
    if ok:
        assert check_max_length(value, least, most) == value
    else:
        with pytest.raises(BadOption, match=f"`max_length` must be an integer .*={value!r}"):
            check_max_length(value, least, most)


def test_good_values_pass_and_hash_as_a_batching_key():
    a = DecodeOptions(beam_width=5, n_best=5, no_repeat_ngram=1, max_length_ratio=0.5).check()
    b = DecodeOptions(top_p=1.0, temperature=0.3, seed=MAX_SEED).check()
    c = DecodeOptions(beam_width=5, n_best=5, no_repeat_ngram=1, max_length_ratio=0.5)
    assert a == c and hash(a) == hash(c) and a != b
    assert b.sampling and not a.sampling
    assert set(a.search_kwargs()) == {
        "n_best",
        "max_length_ratio",
        "max_length_offset",
        "no_repeat_ngram",
        "top_k",
        "top_p",
        "temperature",
        "seed",
        "length_penalty",
        "coverage_penalty",
    }


@pytest.mark.parametrize(
    "spec, expected",
    [("top-k=5", {"top_k": 5}), ("top-p=0.9", {"top_p": 0.9}), (" TOP_P = 1 ", {"top_p": 1.0})],
)
def test_parse_sample(spec, expected):
    assert parse_sample(spec) == expected


@pytest.mark.parametrize("spec", ["top-k", "top-k=2.5", "top-q=3", "k=3", "top-p=x", ""])
def test_parse_sample_refuses_anything_else(spec):
    with pytest.raises(BadOption, match="sample"):
        parse_sample(spec)


def test_translation_from_search_cuts_every_nbest_entry():
    end = 3
    nbest_tokens = np.array([[[5, 3, 0, 0], [6, 7, 3, 0]], [[3, 0, 0, 0], [8, 8, 8, 8]]])
    attention = np.arange(2 * 2 * 4 * 3, dtype=np.float32).reshape(2, 2, 4, 3)
    out = {
        "tokens": nbest_tokens[:, 0],
        "scores": np.array([-1.0, -2.0]),
        "attention": attention[:, 0],
        "nbest_tokens": nbest_tokens,
        "nbest_scores": np.array([[-1.0, -1.5], [-2.0, -9.0]]),
        "nbest_attention": attention,
    }
    best = Translation.from_search(out, 1, end, source_length=2, n_best=2)
    assert best.tokens.tolist() == [3] and best.score == -2.0
    assert [t.tokens.tolist() for t in best.nbest] == [[3], [8, 8, 8, 8]]
    assert [t.score for t in best.nbest] == [-2.0, -9.0]
    np.testing.assert_array_equal(best.nbest[1].attention, attention[1, 1, :4, :2])
    plain = Translation.from_search(out, 0, end, source_length=3)
    assert plain.nbest is None and plain.tokens.tolist() == [5, 3]
    np.testing.assert_array_equal(plain.attention, attention[0, 0, :2])
