"""Loading a trained run directory and translating text with it."""

import json
from pathlib import Path

import keras
import tensorflow as tf

from seq2seq_attn import model as _model  # noqa: F401  (registers the classes load_model needs)
from seq2seq_attn.errors import UserError
from seq2seq_attn.interface import Translation, default_max_length
from seq2seq_attn.tokenizer import TokenizerPair

MODEL_FILE = "model.keras"
TOKENIZER_DIR = "tokenizer"
RUN_INFO_FILE = "run.json"


def check_run_dir(run_dir):
    """Raises UserError unless `run_dir` holds a model and its tokenizer."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"run directory {run_dir} does not exist")
    for name in (MODEL_FILE, TOKENIZER_DIR):
        if not (run_dir / name).exists():
            raise UserError(
                f"run directory {run_dir} has no {name}: is it a finished training run?"
            )
    return run_dir


class Translator:
    """A trained model plus its tokenizers; `translate` takes and returns text.

    Example:

    >>> translator = Translator.load("runs/dates")  # doctest: +SKIP
    >>> translator.translate(["3 March 2021"])[0].text  # doctest: +SKIP
    '2021-03-03'
    """

    def __init__(self, model, tokenizers, run_info=None):
        self.model = model
        self.tokenizers = tokenizers
        self.run_info = run_info or {}
        self._generators = {}

    @classmethod
    def load(cls, run_dir):
        run_dir = check_run_dir(run_dir)
        tokenizers = TokenizerPair.load(run_dir / TOKENIZER_DIR)
        try:
            model = keras.saving.load_model(run_dir / MODEL_FILE, compile=False, safe_mode=True)
        except Exception as err:  # a truncated or foreign .keras file
            message = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise UserError(f"cannot load {run_dir / MODEL_FILE}: {message}") from None
        info_path = run_dir / RUN_INFO_FILE
        info = json.loads(info_path.read_text()) if info_path.exists() else {}
        return cls(model, tokenizers, info)

    def _generator(self, beam_width, length_penalty):
        key = (beam_width, length_penalty)
        if key not in self._generators:
            self._generators[key] = tf.function(
                lambda ids, max_length: self.model.generate(
                    ids, max_length=max_length, beam_width=beam_width, length_penalty=length_penalty
                ),
                input_signature=[
                    tf.TensorSpec([None, None], tf.int32),
                    tf.TensorSpec([], tf.int32),
                ],
            )
        return self._generators[key]

    def translate(self, texts, beam_width=1, max_length=None, length_penalty=0.0, batch_size=64):
        """Translates a list of strings; returns a list of `Translation`."""
        if isinstance(texts, str):
            texts = [texts]
        if beam_width < 1:
            raise UserError(f"beam width must be at least 1, got {beam_width}")
        results = []
        for start in range(0, len(texts), batch_size):
            results += self._translate_batch(
                texts[start : start + batch_size], beam_width, max_length, length_penalty
            )
        return results

    def _translate_batch(self, texts, beam_width, max_length, length_penalty):
        source, target = self.tokenizers.source, self.tokenizers.target
        ids = source.encode_batch(texts)  # (batch, source_len) int32
        if max_length is None:
            max_length = default_max_length(ids.shape[1])
        out = self._generator(beam_width, float(length_penalty))(
            tf.constant(ids), tf.constant(max_length, tf.int32)
        )
        out = {k: out[k].numpy() for k in ("tokens", "scores", "attention")}
        results = []
        for row, text in enumerate(texts):
            source_ids = ids[row, : int((ids[row] != 0).sum())]
            result = Translation.from_search(out, row, self.model.end_id, len(source_ids))
            result.source, result.source_ids = text, source_ids
            result.text = target.decode(result.tokens)
            result.source_tokens = source.id_to_token(source_ids)
            result.target_tokens = target.id_to_token(result.tokens)
            results.append(result)
        return results
