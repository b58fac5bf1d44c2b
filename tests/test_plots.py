"""Tests for seq2seq_attn.plots: files written, sizes, tick labels, plotted values, errors."""

import math
import subprocess
import sys

import matplotlib.image
import numpy as np
import pytest

from seq2seq_attn.errors import UserError
from seq2seq_attn.plots import (
    DPI,
    attention_figure,
    bleu_by_length_figure,
    plot_attention,
    plot_bleu_by_length,
)

SOURCE = ["le", "chat", "est", "assis", "[END]"]
TARGET = ["the", "cat", "sat", "[END]"]


def _weights(target_length, source_length):
    """Row-normalised attention weights with a clear diagonal."""
    w = np.full((target_length, source_length), 0.1)
    w[np.arange(target_length), np.minimum(np.arange(target_length), source_length - 1)] = 1.0
    return w / w.sum(axis=1, keepdims=True)


def _result(bleu_by_range):
    """A minimal score() result with the given {range: bleu} buckets."""
    starts = {"1-10": 1, "11-20": 11, "21-30": 21, "51+": 51}
    buckets = [{"range": r, "min_words": starts[r], "bleu": b} for r, b in bleu_by_range.items()]
    return {"n": 10, "bleu": 20.0, "buckets": buckets}


def test_attention_figure_tick_labels_equal_tokens():
    fig = attention_figure(_weights(4, 5), SOURCE, TARGET, title="t")
    ax = fig.axes[0]
    assert [label.get_text() for label in ax.get_xticklabels()] == SOURCE
    assert [label.get_text() for label in ax.get_yticklabels()] == TARGET
    assert len(fig.axes) == 2  # heatmap + colorbar
    np.testing.assert_allclose(ax.images[0].get_array(), _weights(4, 5), atol=0)


def test_plot_attention_png_opens_with_figure_size_and_ratio(tmp_path):
    path = plot_attention(_weights(4, 5), SOURCE, TARGET, tmp_path / "attention.png")
    assert path == tmp_path / "attention.png"
    image = matplotlib.image.imread(path)
    width, height = attention_figure(_weights(4, 5), SOURCE, TARGET).get_size_inches() * DPI
    assert image.shape[:2] == (round(height), round(width))


def test_figure_grows_with_token_counts_and_stays_proportional():
    small = attention_figure(_weights(3, 3), ["a"] * 3, ["b"] * 3).get_size_inches()
    big = attention_figure(_weights(60, 60), ["w"] * 60, ["v"] * 60).get_size_inches()
    wide = attention_figure(_weights(2, 40), ["w"] * 40, ["v"] * 2).get_size_inches()
    tall = attention_figure(_weights(40, 2), ["w"] * 2, ["v"] * 40).get_size_inches()
    assert big[0] > 2 * small[0] and big[1] > 2 * small[1]
    assert wide[0] / wide[1] > 2.0
    assert tall[1] / tall[0] > 2.0


def test_tick_font_shrinks_for_long_sentences():
    small = attention_figure(_weights(3, 3), ["a"] * 3, ["b"] * 3)
    big = attention_figure(_weights(60, 60), ["w"] * 60, ["v"] * 60)
    small_size = small.axes[0].get_xticklabels()[0].get_fontsize()
    big_size = big.axes[0].get_xticklabels()[0].get_fontsize()
    assert (small_size, big_size) == (10.0, 6.0)


def test_plot_attention_svg_by_suffix(tmp_path):
    path = plot_attention(_weights(4, 5), SOURCE, TARGET, tmp_path / "attention.svg")
    assert "<svg" in path.read_text(encoding="utf-8")[:2000]


@pytest.mark.parametrize(
    ("shape", "match"),
    [((5, 4), r"`weights`.*\(4, 5\).*\(5, 4\)"), ((20,), r"`weights`.*\(4, 5\).*\(20,\)")],
)
def test_shape_mismatch_names_expected_and_received(shape, match):
    with pytest.raises(ValueError, match=match):
        attention_figure(np.zeros(shape), SOURCE, TARGET)


def test_non_finite_weights_and_bad_tokens_rejected():
    with pytest.raises(ValueError, match="`weights`.*NaN"):
        attention_figure(np.full((4, 5), np.nan), SOURCE, TARGET)
    with pytest.raises(ValueError, match="`source_tokens`.*one string"):
        attention_figure(np.zeros((4, 2)), "ab", TARGET)
    with pytest.raises(ValueError, match="`target_tokens` is empty"):
        attention_figure(np.zeros((0, 5)), SOURCE, [])


def test_unwritable_path_and_bad_suffix_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="cannot write plot .*missing"):
        plot_attention(_weights(4, 5), SOURCE, TARGET, tmp_path / "missing" / "a.png")
    with pytest.raises(UserError, match=r"suffix '\.jpg'"):
        plot_attention(_weights(4, 5), SOURCE, TARGET, tmp_path / "a.jpg")
    with pytest.raises(UserError, match="cannot write plot"):
        plot_bleu_by_length({"m": _result({"1-10": 1.0})}, tmp_path / "missing" / "b.png")


def test_bleu_by_length_lines_follow_buckets_with_gaps():
    attention = _result({"1-10": 30.0, "11-20": 28.0, "21-30": 26.0, "51+": 19.0})
    vanilla = _result({"51+": 6.0, "1-10": 28.0, "11-20": 22.0})  # no 21-30, out of order
    fig = bleu_by_length_figure({"attention": attention, "vanilla": vanilla}, title="t")
    ax = fig.axes[0]
    assert [label.get_text() for label in ax.get_xticklabels()] == ["1-10", "11-20", "21-30", "51+"]
    lines = {line.get_label().split()[0]: list(line.get_ydata()) for line in ax.get_lines()}
    assert lines["attention"] == [30.0, 28.0, 26.0, 19.0]
    assert lines["vanilla"][:2] == [28.0, 22.0] and lines["vanilla"][3] == 6.0
    assert math.isnan(lines["vanilla"][2])


def test_plot_bleu_by_length_png_opens(tmp_path):
    results = {"attention": _result({"1-10": 30.0, "11-20": 25.0})}
    path = plot_bleu_by_length(results, tmp_path / "bleu.png")
    height, width = matplotlib.image.imread(path).shape[:2]
    assert (width, height) == (round(6.4 * DPI), round(4.2 * DPI))


def test_bleu_by_length_bad_results():
    with pytest.raises(ValueError, match="`results` is empty"):
        bleu_by_length_figure({})
    with pytest.raises(ValueError, match=r"`results\['vanilla'\]`"):
        bleu_by_length_figure({"vanilla": {"bleu": 3.0}})


def test_plots_do_not_import_pyplot():
    code = (
        "import sys, numpy as np\n"
        "from seq2seq_attn.plots import attention_figure\n"
        "attention_figure(np.eye(2), ['a', 'b'], ['c', 'd']).canvas.draw()\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
