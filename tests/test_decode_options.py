"""One bad decoding option, one message, on every channel.

`DecodeOptions.check` is the one check; the CLI (exit 2, the message on stderr as one
line), `Seq2SeqAttention.generate` (BadOption), the host search over an exported runtime
(`seq2seq_attn.inference.search`, BadOption) and the server (422 with the message, code
`bad_option` or `bad_beam_width`) only pass its message on. Each row of `BAD` is the same
mistake on every channel that exposes the option (the CLI and the server have no length or
coverage penalty; the CLI's `--sample` takes one of top-k and top-p).
"""

import sys

import pytest
from fastapi.testclient import TestClient

from seq2seq_attn.cli import main
from seq2seq_attn.inference.runtime import OnnxModel
from seq2seq_attn.interface import BadOption, DecodeOptions
from seq2seq_attn.serving.app import create_app
from seq2seq_attn.serving.service import Limits
from seq2seq_attn.tokenizer import END_ID, START_ID, TokenizerPair
from seq2seq_attn.translator import Translator

TEXT = "March 3, 1999"
TARGET_VOCAB = 30  # the tiny dates model's target vocabulary: its widest beam
EVERYWHERE = ("cli", "generate", "host", "server")
LIBRARY = ("generate", "host")

# (options, the message, the server's code, the channels that expose these options)
# fmt: off
BAD = [
    (dict(beam_width=0),
     "`beam_width` must be an integer >= 1, received: beam_width=0",
     "bad_beam_width", EVERYWHERE),
    (dict(beam_width=-3),
     "`beam_width` must be an integer >= 1, received: beam_width=-3",
     "bad_beam_width", EVERYWHERE),
    (dict(beam_width=TARGET_VOCAB + 1),
     f"`beam_width` must be at most {TARGET_VOCAB} (the widest beam here), "
     f"received: beam_width={TARGET_VOCAB + 1}",
     "bad_beam_width", EVERYWHERE),
    (dict(beam_width=2, n_best=3),
     "`n_best` must be an integer from 1 to the beam width (2), received: n_best=3",
     "bad_option", EVERYWHERE),
    (dict(beam_width=1, n_best=0),
     "`n_best` must be an integer from 1 to the beam width (1), received: n_best=0",
     "bad_option", EVERYWHERE),
    (dict(beam_width=1, max_length_ratio=100.5),
     "`max_length_ratio` must be a number from 0 to 100, received: max_length_ratio=100.5",
     "bad_option", EVERYWHERE),
    (dict(beam_width=1, max_length_ratio=-0.5),
     "`max_length_ratio` must be a number from 0 to 100, received: max_length_ratio=-0.5",
     "bad_option", EVERYWHERE),
    (dict(beam_width=1, max_length_offset=-1),
     "`max_length_offset` must be an integer >= 0, received: max_length_offset=-1",
     "bad_option", EVERYWHERE),
    (dict(beam_width=1, no_repeat_ngram=-1),
     "`no_repeat_ngram` must be an integer >= 1 or None, received: no_repeat_ngram=-1",
     "bad_option", EVERYWHERE),
    (dict(beam_width=1, top_k=-1),
     "`top_k` must be an integer >= 1 or None, received: top_k=-1",
     "bad_option", EVERYWHERE),
    (dict(beam_width=1, top_p=1.5),
     "`top_p` must be in (0, 1] or None, received: top_p=1.5",
     "bad_option", EVERYWHERE),
    (dict(beam_width=1, top_p=0.0),
     "`top_p` must be in (0, 1] or None, received: top_p=0.0",
     "bad_option", EVERYWHERE),
    (dict(beam_width=1, top_k=3, top_p=0.5),
     "`top_p` must be None when top_k is given (one of the two), received: top_p=0.5",
     "bad_option", ("generate", "host", "server")),
    (dict(beam_width=1, top_k=3, temperature=0.0),
     "`temperature` must be a number from 0.01 to 100, received: temperature=0.0",
     "bad_option", EVERYWHERE),
    (dict(beam_width=1, top_p=0.9, temperature=150.0),
     "`temperature` must be a number from 0.01 to 100, received: temperature=150.0",
     "bad_option", EVERYWHERE),
    (dict(beam_width=1, temperature=0.5),
     "`temperature` must be 1 unless sampling (top_k or top_p), received: temperature=0.5",
     "bad_option", EVERYWHERE),
    (dict(beam_width=2, top_k=3),
     "`beam_width` must be 1 when sampling (top_k or top_p), received: beam_width=2",
     "bad_option", EVERYWHERE),
    (dict(beam_width=1, top_k=3, seed=-1),
     "`seed` must be an integer from 0 to 9223372036854775807 or None, received: seed=-1",
     "bad_option", EVERYWHERE),
    (dict(beam_width=2, length_penalty=-0.5),
     "`length_penalty` must be a finite number >= 0, received: length_penalty=-0.5",
     None, LIBRARY),
    (dict(beam_width=1, coverage_penalty=float("inf")),
     "`coverage_penalty` must be a finite number >= 0, received: coverage_penalty=inf",
     None, LIBRARY),
]
# fmt: on
CASES = [
    pytest.param(options, message, code, channel, id=f"{channel}-{'-'.join(map(str, options))}")
    for options, message, code, channels in BAD
    for channel in channels
]


def test_the_table_is_what_the_one_check_says():
    """Every row is refused by `DecodeOptions.check` itself, with that very message."""
    for options, message, _, _ in BAD:
        with pytest.raises(BadOption) as caught:
            DecodeOptions(**options).check(max_beam_width=TARGET_VOCAB)
        assert str(caught.value) == message


def _cli_args(options):
    """The `translate` flags of `options` (`--sample` carries top_k or top_p)."""
    args = ["--beam", str(options["beam_width"])]
    flags = ("n_best", "max_length_ratio", "max_length_offset", "no_repeat_ngram")
    for name in (*flags, "temperature", "seed"):
        if name in options:
            args += [f"--{name.replace('_', '-')}", str(options[name])]
    for name in ("top_k", "top_p"):
        if name in options:
            args += ["--sample", f"{name.replace('_', '-')}={options[name]}"]
    return args


@pytest.fixture(scope="module")
def translator(tiny_run):
    return Translator.load(tiny_run)


@pytest.fixture(scope="module")
def runtime(tiny_export):
    return OnnxModel(tiny_export[0])


@pytest.fixture(scope="module")
def ids(tiny_export):
    """int32 `(1, source_length)`: TEXT's source ids (the run's tokenizer, exported)."""
    return TokenizerPair.load(tiny_export[0] / "tokenizer").source.encode_batch([TEXT])


@pytest.fixture(scope="module")
def client(tiny_export):
    limits = Limits(max_beam_width=1000)  # the widest beam is then the vocabulary's, as above
    with TestClient(create_app(tiny_export[0], limits=limits, batch_timeout_ms=1)) as client:
        yield client


@pytest.fixture
def refusal(request, tiny_run, capsys):
    """channel -> a function of the options that returns the message it refused them with."""
    channel = request.node.callspec.params["channel"]

    def cli(options):
        code = main(["translate", "--run-dir", str(tiny_run), *_cli_args(options), TEXT])
        err = capsys.readouterr().err
        assert code == 2 and "Traceback" not in err and err.count("\n") == 1, err
        prefix = "seq2seq-attn translate: error: "
        assert err.startswith(prefix), err
        return err[len(prefix) : -1]

    def library(call):
        def refuse(options):
            with pytest.raises(BadOption) as caught:
                call(dict(options))
            return str(caught.value)

        return refuse

    def generate(options):
        model = request.getfixturevalue("translator").model
        n_best = options.pop("n_best", None)
        model.generate(request.getfixturevalue("ids"), num_return_sequences=n_best, **options)

    def host(options):
        runtime, ids = request.getfixturevalue("runtime"), request.getfixturevalue("ids")
        runtime.decode(ids, START_ID, END_ID, max_length=5, **options)

    channels = {"cli": cli, "generate": library(generate), "host": library(host)}
    return channels.get(channel)


@pytest.mark.parametrize("options, message, code, channel", CASES)
def test_same_message_on_every_channel(refusal, request, options, message, code, channel):
    if channel == "server":
        client = request.getfixturevalue("client")
        response = client.post("/translate", json={"text": TEXT, **options})
        assert response.status_code == 422, response.text
        assert response.json() == {"error": message, "code": code}
    else:
        assert refusal(options) == message


def test_interface_imports_no_tensorflow():
    """The options and their check stay TensorFlow-free: the server imports them."""
    import subprocess

    code = "import sys, seq2seq_attn.interface; sys.exit('tensorflow' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0


def test_the_server_takes_the_bounds_it_states(client):
    """The bounds themselves are accepted: the widest ratio, both temperature ends."""
    for extra in (
        {"max_length_ratio": 100, "max_length": 3},
        {"top_k": 3, "temperature": 0.01, "seed": 1},
        {"top_p": 1.0, "temperature": 100, "seed": 1},
    ):
        response = client.post("/translate", json={"text": TEXT, **extra})
        assert response.status_code == 200, response.text
