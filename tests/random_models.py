"""Small `Seq2SeqAttention` models with random weights, shared by the tests of decoding and
training over a candidate set (tests/test_shortlist_decoding.py, test_candidate_softmax.py)."""

import keras
import numpy as np

from seq2seq_attn.model import Seq2SeqAttention

VOCAB = 40
SOURCE = np.array([[5, 6, 7, 8, 9, 4], [10, 11, 12, 0, 0, 0], [13, 4, 0, 0, 0, 0]], np.int32)
MODELS = {
    "untied": {},
    "tied_projected": {"tie_embeddings": True},
    "lstm_luong_feeding": {"rnn": "lstm", "attention": "luong", "input_feeding": True},
}


def random_model(seed, scale, **kwargs):
    """A built model (30 source, `VOCAB` target ids) whose weights are drawn with standard
    deviation `scale / sqrt(fan_in)`, seeded; `kwargs` go to `Seq2SeqAttention`."""
    keras.utils.set_random_seed(seed)
    model = Seq2SeqAttention(30, VOCAB, embedding_dim=8, units=12, **kwargs)
    model.build()
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        shape = tuple(variable.shape)
        variable.assign(rng.normal(0, scale / np.sqrt(shape[0]), shape).astype("float32"))
    return model
