"""SentencePiece tokenization, TensorFlow-free: one `.model` file per side (or one shared).

The same `.model` file is read by `sentencepiece` here (training, evaluation, the server),
by `tensorflow_text.SentencepieceTokenizer` inside the graph (`seq2seq_attn.graph_tokenizer`:
the training pipeline and the SavedModel's `serving_default`), and by SentencePiece's C++
library in a phone app. Ids are identical everywhere; decoding is lossless:
`decode(encode(x)) == x` for NFKC-normalised text (no detokenization rules).

How the models are trained (`trainer_options`), and why:

- `normalization_rule_name="nfkc"` (or `"nfkc_cf"`, case folded, with `lowercase=True`) and
  `remove_extra_whitespaces=False`: SentencePiece's default (`nmt_nfkc`) also collapses and
  strips spaces and drops control characters, which is lossy.
- `add_dummy_prefix=False`: with a dummy prefix, tensorflow-text's detokenizer strips every
  leading space while `sentencepiece` strips one, so decodes of texts that begin with a space
  would differ between the graph and the host.
- `byte_fallback=True` (default): a character never seen in training becomes its UTF-8 bytes
  instead of [UNK], so emoji or CJK round-trip too; it costs 256 vocabulary entries.
- Special ids: [PAD] 0, [UNK] 1, [START] 2 (bos), [END] 3 (eos), the ids the model expects.

Example:
    >>> pair = TokenizerPair.train(["a small example", "another one"] * 20,
    ...                            ["un pequeño ejemplo", "otro más"] * 20,
    ...                            source_vocab_size=40, target_vocab_size=40,
    ...                            byte_fallback=False)
    >>> ids = pair.target.encode("otro ejemplo")
    >>> ids[0] == START_ID and ids[-1] == END_ID
    True
    >>> pair.target.decode(ids)
    'otro ejemplo'
"""

import hashlib
import io
import json
from pathlib import Path

import numpy as np

from seq2seq_attn.errors import UserError
from seq2seq_attn.interface import PAD_ID

UNK_ID, START_ID, END_ID = 1, 2, 3
SPECIAL_PIECES = {"pad": "[PAD]", "unk": "[UNK]", "bos": "[START]", "eos": "[END]"}
FORMAT = "seq2seq_attn.sentencepiece/1"
SETTINGS_FILE = "tokenizer.json"
MODEL_TYPES = ("unigram", "bpe")
BYTE_PIECES = 256
# The `tokenizer:` section of a config: these keys and defaults.
DEFAULTS = {
    "source_vocab_size": 8000,
    "target_vocab_size": 8000,
    "model_type": "unigram",
    "shared": False,
    "character_coverage": 1.0,
    "byte_fallback": True,
    "lowercase": False,
}


def check_options(options):
    """UserError naming the first bad `tokenizer:` value; returns `options` with defaults."""
    options = {**DEFAULTS, **options}
    for key in ("source_vocab_size", "target_vocab_size"):
        value = options[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 8:
            raise UserError(f"tokenizer.{key} must be an integer >= 8, got {value!r}")
    if options["model_type"] not in MODEL_TYPES:
        raise UserError(
            f"tokenizer.model_type must be unigram or bpe, got {options['model_type']!r}"
        )
    coverage = options["character_coverage"]
    if isinstance(coverage, bool) or not isinstance(coverage, int | float) or not 0 < coverage <= 1:
        raise UserError(f"tokenizer.character_coverage must be in (0, 1], got {coverage!r}")
    for key in ("shared", "byte_fallback", "lowercase"):
        if not isinstance(options[key], bool):
            raise UserError(f"tokenizer.{key} must be true or false, got {options[key]!r}")
    if options["shared"] and options["source_vocab_size"] != options["target_vocab_size"]:
        raise UserError(
            "tokenizer.shared: true trains one model for both sides: give source_vocab_size and "
            f"target_vocab_size the same value (got {options['source_vocab_size']} and "
            f"{options['target_vocab_size']})"
        )
    return options


def trainer_options(vocab_size, model_type, character_coverage, byte_fallback, lowercase):
    """Keyword arguments of `sentencepiece.SentencePieceTrainer.train` (see the module doc)."""
    return {
        "vocab_size": vocab_size,
        "model_type": model_type,
        "character_coverage": float(character_coverage),
        "byte_fallback": byte_fallback,
        "normalization_rule_name": "nfkc_cf" if lowercase else "nfkc",
        "remove_extra_whitespaces": False,
        "add_dummy_prefix": False,
        "hard_vocab_limit": False,  # a small corpus may not fill the vocabulary
        "pad_id": PAD_ID,
        "unk_id": UNK_ID,
        "bos_id": START_ID,
        "eos_id": END_ID,
        "pad_piece": SPECIAL_PIECES["pad"],
        "unk_piece": SPECIAL_PIECES["unk"],
        "bos_piece": SPECIAL_PIECES["bos"],
        "eos_piece": SPECIAL_PIECES["eos"],
        "max_sentence_length": 1 << 16,
        "shuffle_input_sentence": False,  # with the whole corpus read: deterministic
        "num_threads": 2,
        "minloglevel": 2,
    }


def train_model(
    texts,
    vocab_size,
    model_type="unigram",
    character_coverage=1.0,
    byte_fallback=True,
    lowercase=False,
):
    """The serialized SentencePiece model (`.model` bytes) trained on `texts`.

    Raises:
        UserError: no text, or a vocabulary the trainer cannot build (too small).
    """
    import sentencepiece as spm

    texts = [t for t in texts if t]
    if not texts:
        raise UserError("cannot train a tokenizer on an empty corpus")
    if byte_fallback and vocab_size < BYTE_PIECES + 8:
        raise UserError(
            f"a vocabulary of {vocab_size} cannot hold the {BYTE_PIECES} byte pieces of "
            f"byte_fallback: use at least {BYTE_PIECES + 8} pieces or byte_fallback: false"
        )
    options = trainer_options(vocab_size, model_type, character_coverage, byte_fallback, lowercase)
    model = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(sentence_iterator=iter(texts), model_writer=model, **options)
    except RuntimeError as err:
        raise UserError(f"cannot train a {vocab_size}-piece tokenizer: {err}") from None
    return model.getvalue()


def _scalar_values(text):
    """`text` with lone surrogates replaced by U+FFFD (valid surrogate pairs are joined)."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


class SentencePieceTokenizer:
    """One side's SentencePiece model: text <-> ids with [START] and [END].

    Args:
        model_proto: the bytes of a `.model` file.
    """

    def __init__(self, model_proto):
        import sentencepiece as spm

        self.model_proto = bytes(model_proto)
        self.processor = spm.SentencePieceProcessor(model_proto=self.model_proto)
        if self.processor.bos_id() != START_ID or self.processor.eos_id() != END_ID:
            raise UserError("the SentencePiece model does not use [START]=2 and [END]=3")

    @property
    def vocab_size(self):
        return self.processor.get_piece_size()

    @property
    def sha256(self):
        return hashlib.sha256(self.model_proto).hexdigest()

    def encode(self, text):
        """[START] ids [END] of one text, as a list of ints.

        A lone surrogate (possible in a Python string decoded from JSON `"\\ud800"`, never in
        UTF-8 bytes) is not a character: it becomes U+FFFD, as a UTF-8 decoder would make it.
        """
        return [START_ID, *self.processor.encode(_scalar_values(text)), END_ID]

    def encode_batch(self, texts, pad_to=None):
        """int32 `(len(texts), longest or pad_to)`, padded with [PAD]."""
        rows = [self.encode(text) for text in texts]
        length = pad_to or max(map(len, rows), default=0)
        batch = np.full((len(rows), length), PAD_ID, np.int32)
        for out, ids in zip(batch, rows, strict=True):
            out[: len(ids)] = ids[:length]
        return batch

    def decode(self, ids):
        """The text of `ids`; [PAD], [START] and [END] decode to nothing."""
        return self.processor.decode([int(i) for i in ids])

    def id_to_token(self, ids):
        """The piece strings of `ids` (for attention plots)."""
        return [self.processor.id_to_piece(int(i)) for i in ids]


class TokenizerPair:
    """The source and target tokenizers of a run (one object twice if shared).

    Args:
        source: the source side's `SentencePieceTokenizer`.
        target: the target side's `SentencePieceTokenizer` (the same object if shared).
        options: the `tokenizer:` settings they were trained with.
    """

    def __init__(self, source, target, options=None):
        self.source, self.target = source, target
        self.options = check_options(options or {})

    @property
    def shared(self):
        return self.source is self.target

    @classmethod
    def train(cls, source_texts, target_texts, **options):
        """Trains from parallel texts (the train split) as the `tokenizer:` section says."""
        options = check_options(options)
        common = {
            k: options[k]
            for k in ("model_type", "character_coverage", "byte_fallback", "lowercase")
        }
        if options["shared"]:
            joint = train_model(
                [*source_texts, *target_texts], options["source_vocab_size"], **common
            )
            shared = SentencePieceTokenizer(joint)
            return cls(shared, shared, options)
        source = train_model(source_texts, options["source_vocab_size"], **common)
        target = train_model(target_texts, options["target_vocab_size"], **common)
        return cls(SentencePieceTokenizer(source), SentencePieceTokenizer(target), options)

    def files(self):
        """Side -> file name in the tokenizer directory."""
        if self.shared:
            return {"source": "shared.model", "target": "shared.model"}
        return {"source": "source.model", "target": "target.model"}

    def save(self, directory):
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        files = self.files()
        for side in ("source", "target"):
            (directory / files[side]).write_bytes(getattr(self, side).model_proto)
        settings = {
            "format": FORMAT,
            "files": files,
            "sha256": {side: getattr(self, side).sha256 for side in files},
            "vocab_size": {side: getattr(self, side).vocab_size for side in files},
            "special_ids": {"pad": PAD_ID, "unk": UNK_ID, "start": START_ID, "end": END_ID},
            "options": self.options,
        }
        (directory / SETTINGS_FILE).write_text(json.dumps(settings, indent=2) + "\n")

    @classmethod
    def load(cls, directory):
        """Reads a tokenizer directory written by `save`.

        Raises:
            UserError: missing or damaged files, or a run from before SentencePiece.
        """
        directory = Path(directory)
        settings_path = directory / SETTINGS_FILE
        if not settings_path.is_file():
            if (directory / "source.vocab.txt").exists():
                raise UserError(
                    f"{directory} holds a WordPiece tokenizer from seq2seq-attn 0.1, which this "
                    "version no longer reads: train it again (tokenizers are SentencePiece now)"
                )
            raise UserError(f"no tokenizer in {directory} (missing {SETTINGS_FILE})")
        try:
            settings = json.loads(settings_path.read_text())
            if settings.get("format") != FORMAT:
                raise ValueError(f"unknown format {settings.get('format')!r}")
            protos = {
                side: (directory / name).read_bytes() for side, name in settings["files"].items()
            }
            for side, digest in settings["sha256"].items():
                if hashlib.sha256(protos[side]).hexdigest() != digest:
                    raise ValueError(f"{settings['files'][side]} does not match its SHA-256")
        except (OSError, ValueError, KeyError) as err:
            raise UserError(f"cannot load the tokenizer in {directory}: {err}") from None
        source = SentencePieceTokenizer(protos["source"])
        target = (
            source
            if settings["files"]["target"] == settings["files"]["source"]
            else (SentencePieceTokenizer(protos["target"]))
        )
        return cls(source, target, settings.get("options"))
