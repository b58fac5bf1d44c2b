"""Figures: attention heatmaps and BLEU by sentence length.

``seq2seq-attn translate ... --plot attention.png`` draws one sentence's attention weights
the way Bahdanau et al. (2015), Figure 3 does (source words along the top, target words
down the side); :func:`plot_bleu_by_length` draws their Figure 2 (BLEU against source
sentence length, one line per model) from :func:`seq2seq_attn.evaluation.score` results.

Figures are built on :class:`matplotlib.figure.Figure` with an Agg canvas and never touch
``pyplot``, so there is no global figure state: the functions are safe to call from a server
thread and need no display.

Example:
    >>> import numpy as np
    >>> weights = np.array([[0.9, 0.1], [0.2, 0.8]])
    >>> fig = attention_figure(weights, ["le", "chat"], ["the", "cat"])
    >>> [label.get_text() for label in fig.axes[0].get_xticklabels()]
    ['le', 'chat']
"""

from __future__ import annotations

import math
import os
import pathlib
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from seq2seq_attn.errors import UserError

DPI = 100
_FORMATS = {".png": "png", ".svg": "svg"}


def attention_figure(
    weights: Any,
    source_tokens: Sequence[str],
    target_tokens: Sequence[str],
    title: str | None = None,
) -> Figure:
    """Draws attention weights as a heatmap: source tokens on x (top), target tokens on y.

    Figure and font sizes grow with the token counts so that up to about 60 x 60 tokens stay
    readable.

    Args:
        weights: Array-like of shape `(target_length, source_length)`; row ``i`` holds the
            attention weights ``a_i`` used to emit target token ``i`` (Bahdanau et al. 2015,
            eq. 6).
        source_tokens: The `source_length` source tokens, in order.
        target_tokens: The `target_length` target tokens, in order.
        title: Optional figure title.

    Returns:
        A :class:`matplotlib.figure.Figure` with an Agg canvas; its first axes holds the
        heatmap, the second the colorbar.

    Raises:
        ValueError: If ``weights`` is not 2-D or its shape does not match the token counts.
    """
    source_tokens = _check_tokens(source_tokens, "source_tokens")
    target_tokens = _check_tokens(target_tokens, "target_tokens")
    weights = _check_weights(weights, len(target_tokens), len(source_tokens))
    fontsize = _tick_fontsize(max(len(source_tokens), len(target_tokens)))
    fig = Figure(
        figsize=_attention_figsize(source_tokens, target_tokens, fontsize, title),
        dpi=DPI,
        layout="constrained",
    )
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    vmax = max(float(weights.max()), 1e-9)
    image = ax.imshow(weights, cmap="viridis", vmin=0.0, vmax=vmax, aspect="equal")
    ax.set_xticks(range(len(source_tokens)), labels=source_tokens, fontsize=fontsize)
    ax.set_yticks(range(len(target_tokens)), labels=target_tokens, fontsize=fontsize)
    ax.xaxis.tick_top()
    ax.xaxis.set_label_position("top")
    ax.tick_params(axis="x", labelrotation=90)
    ax.tick_params(length=0)
    label_fontsize = max(fontsize + 1, 9.0)
    ax.set_xlabel("source", fontsize=label_fontsize)
    ax.set_ylabel("target", fontsize=label_fontsize)
    colorbar = fig.colorbar(image, ax=ax, shrink=min(0.8, 0.5 + 0.05 * len(target_tokens)))
    colorbar.ax.tick_params(labelsize=fontsize)
    colorbar.set_label("attention weight", fontsize=label_fontsize)
    if title:
        fig.suptitle(title, fontsize=label_fontsize + 2)
    return fig


def _tick_fontsize(count: int) -> float:
    """10 pt for up to 20 tokens, shrinking linearly to 6 pt at 60 tokens and beyond."""
    return max(6.0, min(10.0, 12.0 - count / 10))


def _attention_figsize(
    source_tokens: Sequence[str], target_tokens: Sequence[str], fontsize: float, title: str | None
) -> tuple[float, float]:
    """Figure (width, height) in inches: a square cell per token plus room for the labels."""
    cell = 2.0 * fontsize / 72  # inches; two text heights per token row or column
    char = 0.6 * fontsize / 72  # inches; rough width of one label character
    longest_source = max(len(t) for t in source_tokens)
    longest_target = max(len(t) for t in target_tokens)
    width = len(source_tokens) * cell + longest_target * char + 1.6  # labels, colorbar
    height = len(target_tokens) * cell + longest_source * char + 0.8 + (0.4 if title else 0.0)
    return max(width, 3.5), max(height, 2.5)


def _check_tokens(tokens: Sequence[str], name: str) -> list[str]:
    """Returns the tokens as a list of str; ValueError for a bare string or an empty list."""
    if isinstance(tokens, str):
        raise ValueError(f"`{name}` must be a sequence of tokens, received one string {tokens!r}.")
    tokens = [str(token) for token in tokens]
    if not tokens:
        raise ValueError(f"`{name}` is empty; need at least one token.")
    return tokens


def _check_weights(weights: Any, target_length: int, source_length: int) -> np.ndarray:
    """Returns ``weights`` as a float array of shape (target_length, source_length)."""
    weights = np.asarray(weights, dtype=np.float64)
    expected = (target_length, source_length)
    if weights.shape != expected:
        raise ValueError(
            f"`weights` must have shape (len(target_tokens), len(source_tokens)) = {expected}, "
            f"received shape {weights.shape}."
        )
    if not np.all(np.isfinite(weights)):
        raise ValueError("`weights` contains NaN or infinite values.")
    return weights


def plot_attention(
    weights: Any,
    source_tokens: Sequence[str],
    target_tokens: Sequence[str],
    path: str | os.PathLike,
    title: str | None = None,
) -> pathlib.Path:
    """Saves an attention heatmap (see :func:`attention_figure`) as PNG or SVG.

    Args:
        weights: Array-like of shape `(target_length, source_length)`.
        source_tokens: The `source_length` source tokens.
        target_tokens: The `target_length` target tokens.
        path: Output file; ``.png`` or ``.svg``. Its directory must exist.
        title: Optional figure title.

    Returns:
        The path written.

    Raises:
        ValueError: If the shapes do not match (see :func:`attention_figure`).
        UserError: If the suffix is not ``.png``/``.svg`` or the file cannot be written.
    """
    path, fmt = _output_path(path)
    fig = attention_figure(weights, source_tokens, target_tokens, title=title)
    return _save(fig, path, fmt)


def plot_bleu_by_length(
    results: dict[str, dict[str, Any]],
    path: str | os.PathLike,
    title: str | None = None,
) -> pathlib.Path:
    """Saves BLEU per source-length bucket (see :func:`bleu_by_length_figure`) as PNG or SVG.

    Args:
        results: Model name -> result of :func:`seq2seq_attn.evaluation.score`, e.g.
            ``{"attention": ..., "vanilla": ...}``.
        path: Output file; ``.png`` or ``.svg``. Its directory must exist.
        title: Optional figure title.

    Returns:
        The path written.

    Raises:
        ValueError: If ``results`` is empty or a result has no ``"buckets"``.
        UserError: If the suffix is not ``.png``/``.svg`` or the file cannot be written.
    """
    path, fmt = _output_path(path)
    return _save(bleu_by_length_figure(results, title=title), path, fmt)


def bleu_by_length_figure(results: dict[str, dict[str, Any]], title: str | None = None) -> Figure:
    """Draws BLEU per source-length bucket, one line per model (Bahdanau et al. 2015, Fig. 2).

    Args:
        results: Model name -> result of :func:`seq2seq_attn.evaluation.score`. A bucket
            missing from one model leaves a gap in its line.
        title: Optional axes title.

    Returns:
        A :class:`matplotlib.figure.Figure` with an Agg canvas and one axes; its x tick labels
        are the bucket ranges (``"1-10"``, ...), ordered by length.

    Raises:
        ValueError: If ``results`` is empty or a result has no ``"buckets"``.
    """
    labels = _bucket_labels(results)
    fig = Figure(figsize=(6.4, 4.2), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for name, result in results.items():
        bleu = {bucket["range"]: bucket["bleu"] for bucket in result["buckets"]}
        ax.plot(
            range(len(labels)),
            [bleu.get(label, math.nan) for label in labels],
            marker="o",
            label=f"{name} (BLEU {result['bleu']:.1f})" if "bleu" in result else name,
        )
    ax.set_xticks(range(len(labels)), labels=labels)
    ax.set_xlabel("source sentence length (words)")
    ax.set_ylabel("BLEU")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title)
    return fig


def _bucket_labels(results: dict[str, dict[str, Any]]) -> list[str]:
    """The union of bucket range labels over all results, ordered by shortest length."""
    if not results:
        raise ValueError("`results` is empty; pass at least one {model_name: score_result}.")
    starts = {}
    for name, result in results.items():
        if not isinstance(result, dict) or "buckets" not in result:
            raise ValueError(
                f"`results[{name!r}]` must be a score() result with a 'buckets' list, "
                f"received {type(result).__name__}."
            )
        for bucket in result["buckets"]:
            starts[bucket["range"]] = bucket.get("min_words", 0)
    return sorted(starts, key=lambda label: starts[label])


def _output_path(path: str | os.PathLike) -> tuple[pathlib.Path, str]:
    """The path and its image format; UserError for an unsupported suffix."""
    path = pathlib.Path(path)
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise UserError(
            f"cannot write plot {path}: suffix {path.suffix!r} is not one of {sorted(_FORMATS)}"
        )
    return path, fmt


def _save(fig: Figure, path: pathlib.Path, fmt: str) -> pathlib.Path:
    """Writes ``fig`` to ``path``; UserError with one line if that fails."""
    try:
        fig.savefig(path, format=fmt, dpi=DPI, facecolor="white")
    except OSError as err:
        raise UserError(f"cannot write plot {path}: {err.strerror or err}") from err
    return path
