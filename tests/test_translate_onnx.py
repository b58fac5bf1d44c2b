"""translate.onnx (strings in, strings out, onnxruntime-extensions' SentencePiece ops) against
the host text path: `SentencePieceTokenizer.encode_batch` -> host-side greedy -> `decode`."""

import json
import shutil

import numpy as np
import pytest

from seq2seq_attn.export.convert import (
    detokenizer_onnx,
    to_onnx,
    to_translate_onnx,
    tokenizer_onnx,
    write_encoder_onnx,
    write_greedy_onnx,
)
from seq2seq_attn.export.signatures import ExportModule
from seq2seq_attn.export.validate import (
    TRANSLATE_RUNTIME,
    Reference,
    check_translate_onnx,
    translate_failures,
    translate_session,
)
from seq2seq_attn.inference.runtime import OnnxModel
from seq2seq_attn.interface import trim_after_end
from seq2seq_attn.tokenizer import END_ID, PAD_ID, START_ID, TokenizerPair
from seq2seq_attn.translator import Translator

# Dates the tiny model was trained on, and texts that test the tokenizer ops: the empty
# string, a leading space, runs of spaces, accents, characters outside the vocabulary.
TEXTS = [
    "3 March 2021",
    " 12/05/1999",
    "",
    "Tuesday,  February 5, 2002",
    "5 de março de 2020, às 10h",
    "lundi 14 février 1994 — été",
    "  ÁRBOL 1⁄2 naïve 😀",
    "x" * 60,
]


def session(model_or_path):
    """A session with the extensions' ops registered (TensorFlow is loaded already)."""
    return translate_session(model_or_path)


def host_translations(export_dir, tokenizers, texts):
    """What the server's text path computes: encode, host-side greedy over ONNX, decode."""
    ids = tokenizers.source.encode_batch(texts)
    tokens = OnnxModel(export_dir).decode(ids, START_ID, END_ID)["tokens"]
    return [tokenizers.target.decode(row) for row in tokens]


@pytest.fixture(scope="module")
def byte_fallback_pair():
    source = ["the cat sat on the mat", "a dog ran in the park", "three more days"] * 20
    target = ["el gato se sentó en la alfombra", "un perro corrió en el parque", "niño"] * 20
    return TokenizerPair.train(
        source, target, byte_fallback=True, source_vocab_size=300, target_vocab_size=300
    )


def test_translate_onnx_equals_the_host_text_path(tiny_export, tiny_run):
    out, _ = tiny_export
    tokenizers = Translator.load(tiny_run).tokenizers
    translate = session(str(out / "translate.onnx"))
    assert [(i.name, i.type) for i in translate.get_inputs()] == [("text", "tensor(string)")]
    assert [o.name for o in translate.get_outputs()] == ["translation", "tokens", "scores"]
    expected = host_translations(out, tokenizers, TEXTS)
    (batch,) = translate.run(["translation"], {"text": np.array(TEXTS, object)})
    assert batch.tolist() == expected
    for text, want in zip(TEXTS, expected, strict=True):  # batches of one: no padding
        (one,) = translate.run(["translation"], {"text": np.array([text], object)})
        assert one.tolist() == [want], text


def test_translate_onnx_passes_parity_and_is_hashed(tiny_export):
    out, report = tiny_export
    result = report["artifacts"][f"translate.onnx/{TRANSLATE_RUNTIME}"]
    assert result["translation_agreement"] == 1.0
    assert result["greedy_graph_agreement"] == 1.0
    assert result["mismatches"] == []
    assert report["passed"]
    assert "translate.onnx" in json.loads((out / "manifest.json").read_text())["files"]


def test_validator_catches_wrong_translations(tiny_export, tiny_run, tmp_path):
    out, _ = tiny_export
    translator = Translator.load(tiny_run)
    tokenizers = translator.tokenizers
    shutil.copy(out / "greedy.onnx", tmp_path / "greedy.onnx")
    wrong = TokenizerPair(tokenizers.source, tokenizers.source)  # target ids read as source
    to_translate_onnx(tmp_path, wrong, tmp_path / "translate.onnx")
    reference = Reference(translator.model, tokenizers.source.encode_batch(TEXTS))
    host_greedy = OnnxModel(out).decode(reference.source_ids, START_ID, END_ID)["tokens"]
    result = check_translate_onnx(
        reference, tmp_path / "translate.onnx", tokenizers, TEXTS, host_greedy
    )
    assert result["translation_agreement"] < 1.0
    assert result["greedy_graph_agreement"] == 1.0  # the ids are right, the strings are not
    failures = translate_failures(result)
    assert failures and "translation_agreement" in failures[0]


def test_translate_onnx_with_a_static_source_length(tiny_export, tiny_run, tmp_path):
    out, _ = tiny_export
    translator = Translator.load(tiny_run)
    tokenizers = translator.tokenizers
    length = 24
    module = ExportModule(translator.model, max_source_length=length)
    write_encoder_onnx(module, tmp_path / "encoder.onnx")  # as the export writes greedy.onnx
    to_onnx(module.decode_step, tmp_path / "decoder_step.onnx")
    write_greedy_onnx(module, tmp_path)
    to_translate_onnx(tmp_path, tokenizers, tmp_path / "translate.onnx")
    texts = [t for t in TEXTS if len(tokenizers.source.encode(t)) <= length]
    (got,) = session(str(tmp_path / "translate.onnx")).run(
        ["translation"], {"text": np.array(texts, object)}
    )
    assert got.tolist() == host_translations(out, tokenizers, texts)  # padding changes nothing


def test_tokenizer_graph_equals_encode_batch(byte_fallback_pair):
    source = byte_fallback_pair.source
    texts = ["the cat", "", " a dog", "  two  spaces ", "ünïcödé 😀 中文", "the " * 30, "tab\there"]
    tokenize = session(tokenizer_onnx(source.model_proto))
    (ids,) = tokenize.run(None, {"text": np.array(texts, object)})
    np.testing.assert_array_equal(ids, source.encode_batch(texts))
    for length in (5, 40):  # a fixed length pads or cuts every row
        fixed = session(tokenizer_onnx(source.model_proto, source_length=length))
        (ids,) = fixed.run(None, {"text": np.array(texts, object)})
        np.testing.assert_array_equal(ids, source.encode_batch(texts, pad_to=length))


def test_decoder_op_equals_host_decode_on_byte_pieces(byte_fallback_pair):
    target = byte_fallback_pair.target
    piece = target.processor.piece_to_id

    def utf8(text):
        return [piece(f"<0x{b:02X}>") for b in text.encode("utf-8")]

    assert len(utf8("é")) == 2 and all(i > END_ID for i in utf8("é"))
    space, gato = piece("▁"), target.encode("gato")[1:-1]
    rows = [
        utf8("é"),  # a two-byte character as byte pieces
        utf8("😀") + [space] + gato,  # four bytes, then ordinary pieces
        utf8("é")[:1],  # an incomplete UTF-8 sequence: U+FFFD
        [space, space, *gato],  # leading spaces are kept
        [START_ID, *gato, END_ID, *gato],  # nothing after [END]
        [*gato, 1, *utf8("ñ")],  # [UNK]
        [START_ID, END_ID],  # empty
        [*gato, space],  # a trailing space
        target.encode(" niño ¿qué? 中"),  # unseen characters through byte fallback
    ]
    width = max(map(len, rows)) + 3
    tokens = np.full((len(rows), width), PAD_ID, np.int32)
    for out, row in zip(tokens, rows, strict=True):
        out[: len(row)] = row
    (got,) = session(detokenizer_onnx(target.model_proto)).run(None, {"tokens": tokens})
    expected = [target.decode(trim_after_end(row, END_ID)) for row in tokens]
    assert got.tolist() == expected
    assert expected[0] == "é" and expected[2] == "\ufffd" and expected[3].startswith("  ")
    assert expected[-1] == " niño ¿qué? 中"
