"""seq2seq_attn: Keras 3 encoder-decoder models with attention.

Attributes are imported lazily so that TensorFlow-free parts of the package
(the pure-Python tokenizer used by ``serving/``) can be imported without
pulling in TensorFlow.
"""

import importlib

__version__ = "0.1.0"

_LAZY = {
    "BahdanauAttention": "seq2seq_attn.attention",
    "LuongAttention": "seq2seq_attn.attention",
    "AttentionDecoderCell": "seq2seq_attn.decoder",
    "Encoder": "seq2seq_attn.encoder",
    "Seq2SeqAttention": "seq2seq_attn.model",
}

__all__ = list(_LAZY) + ["__version__"]


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'seq2seq_attn' has no attribute {name!r}")
