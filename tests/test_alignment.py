"""Word alignments and scores (`seq2seq_attn.alignment`): golden values from hand-made
attention matrices and pieces, computed by hand in the comments; invariants; real pieces."""

import numpy as np
import pytest

from seq2seq_attn.alignment import (
    format_pharaoh,
    parse_pharaoh,
    piece_words,
    word_alignment,
    word_scores,
)

SOURCE = ["[START]", "The", "▁cat", "s", "▁sle", "pt", ".", "[END]"]  # "The cats slept."
TARGET = ["Los", "▁ga", "tos", "▁dorm", "ían", ".", "[END]"]  # "Los gatos dormían."
ATTENTION = np.array(
    #  [S]   The   ▁cat  s     ▁sle  pt    .     [E]
    [
        [0.10, 0.60, 0.20, 0.00, 0.00, 0.00, 0.00, 0.10],  # Los
        [0.00, 0.10, 0.50, 0.20, 0.10, 0.00, 0.00, 0.10],  # ▁ga
        [0.00, 0.00, 0.10, 0.60, 0.10, 0.10, 0.00, 0.10],  # tos
        [0.00, 0.00, 0.10, 0.00, 0.40, 0.30, 0.10, 0.10],  # ▁dorm
        [0.00, 0.00, 0.00, 0.00, 0.20, 0.50, 0.20, 0.10],  # ían
        [0.00, 0.00, 0.00, 0.00, 0.00, 0.10, 0.60, 0.30],  # .
        [0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 0.10, 0.90],  # [END]
    ]
)


def test_pieces_merge_into_the_words_of_the_text():
    # The first piece has no marker (no dummy prefix) and still starts a word; punctuation
    # without a marker sticks to its word, as in the decoded text.
    assert piece_words(SOURCE) == (["The", "cats", "slept."], [None, 0, 1, 1, 2, 2, 2, None])
    assert piece_words(TARGET)[0] == ["Los", "gatos", "dormían."]


def test_space_pieces_bytes_and_a_leading_space():
    # " a  €!": a leading marker, a space-only piece, a character as three byte pieces
    pieces = ["▁a", "▁", "▁", "<0xE2>", "<0x82>", "<0xAC>", "!", "<0x0A>", "b"]
    assert piece_words(pieces) == (["a", "€!", "b"], [0, None, None, 1, 1, 1, 1, None, 2])


def test_golden_soft_and_hard_alignment():
    alignment = word_alignment(ATTENTION, SOURCE, TARGET)
    # Los: The .6, cats .2, slept. 0 -> /.8; gatos: rows ▁ga+tos: The .1, cats .5+.2+.1+.6
    # = 1.4, slept. .1+.1+.1 = .3 -> /1.8; dormían.: rows ▁dorm+ían+".": cats .1, slept.
    # .4+.3+.1 + .2+.5+.2 + .1+.6 = 2.4 -> /2.5
    expected = [
        [0.6 / 0.8, 0.2 / 0.8, 0.0],
        [0.1 / 1.8, 1.4 / 1.8, 0.3 / 1.8],
        [0.0, 0.1 / 2.5, 2.4 / 2.5],
    ]
    np.testing.assert_allclose(alignment.soft, expected, atol=1e-6)
    assert alignment.hard() == [(0, 0), (1, 1), (2, 2)]
    assert alignment.pharaoh() == "0-0 1-1 2-2"
    assert alignment.format("soft") == "0.750,0.250,0.000 0.056,0.778,0.167 0.000,0.040,0.960"


def test_hard_is_each_target_words_argmax_and_soft_rows_sum_to_one():
    rng = np.random.default_rng(0)
    source = ["[START]", "a", "b", "▁c", "▁d", "e", "▁f", "[END]"]
    target = ["x", "▁y", "z", "▁w", "▁", "▁v", "[END]"]
    for _ in range(50):
        attention = rng.dirichlet(np.full(len(source), 0.3), size=len(target))
        alignment = word_alignment(attention, source, target)
        np.testing.assert_allclose(alignment.soft.sum(axis=1), 1.0, atol=1e-6)
        # an independent twin: target words x·y (rows 0), y·z (1, 2), w (3), v (5)
        words = [[0], [1, 2], [3], [5]]
        mass = np.stack([attention[rows].sum(0) for rows in words])  # (4, source pieces)
        by_word = np.stack([mass[:, [1, 2]].sum(1), mass[:, [3]].sum(1), mass[:, [4, 5]].sum(1),
                            mass[:, [6]].sum(1)], axis=1)  # fmt: skip
        assert alignment.hard() == [(int(s), t) for t, s in enumerate(by_word.argmax(1))]


def test_a_row_of_attention_only_on_specials_is_uniform():
    attention = np.array([[0.5, 0.0, 0.0, 0.5], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
    alignment = word_alignment(attention, ["[START]", "a", "▁b", "[END]"], ["x", "▁y", "[END]"])
    np.testing.assert_allclose(alignment.soft, [[0.5, 0.5], [1.0, 0.0]])
    assert alignment.pharaoh() == "0-0 0-1"


def test_an_empty_source_or_target_has_an_empty_alignment():
    alignment = word_alignment(np.ones([2, 2]) / 2, ["[START]", "[END]"], ["x", "[END]"])
    assert alignment.soft.shape == (1, 0) and alignment.pharaoh() == ""
    assert word_alignment(np.zeros([1, 3]), ["[START]", "a", "[END]"], ["[END]"]).pharaoh() == ""


def test_a_mismatched_attention_shape_is_refused():
    with pytest.raises(ValueError, match=r"\(target pieces, source pieces\) = \(7, 8\)"):
        word_alignment(ATTENTION[:, :-1], SOURCE, TARGET)


def test_pharaoh_round_trip_and_malformed_lines():
    pairs = [(0, 0), (2, 1), (1, 2), (10, 3)]
    assert format_pharaoh(pairs) == "0-0 2-1 1-2 10-3"
    assert parse_pharaoh(format_pharaoh(pairs)) == pairs
    assert parse_pharaoh("") == []
    for bad in ("0-", "a-1", "0:1", "1-2-3"):
        with pytest.raises(ValueError, match="Pharaoh"):
            parse_pharaoh(bad)


def test_word_scores_sum_pieces_and_the_sentence_score_is_the_mean():
    lps = [-0.1, -0.2, -0.3, -0.4, -0.5, -0.6, -0.05]
    scores = word_scores(lps, TARGET)
    # Los -0.1; gatos -0.2 - 0.3; dormían. -0.4 - 0.5 - 0.6; [END] in the sentence only
    np.testing.assert_allclose(scores.words, [-0.1, -0.5, -1.5])
    assert scores.sentence == pytest.approx(sum(lps) / 7)
    assert scores.tokens == pytest.approx(lps)
    with pytest.raises(ValueError, match="one value per target piece"):
        word_scores(lps[:-1], TARGET)


def test_real_pieces_give_the_words_of_the_decoded_text():
    from seq2seq_attn.tokenizer import TokenizerPair

    texts = ["The cats slept, didn't they?", "Hello  world", " leading space", "€ 5, naïve!"]
    pair = TokenizerPair.train(texts * 10, texts * 10, source_vocab_size=300,
                               target_vocab_size=300)  # fmt: skip
    for text in [*texts, "unseen ünïcödé 漢字 🙂 words"]:
        ids = pair.source.encode(text)
        words, owners = piece_words(pair.source.id_to_token(ids))
        assert words == pair.source.decode(ids).split(), text
        assert owners[0] is None and owners[-1] is None


# --- on the tiny dates model: the library's results ---------------------------------------


@pytest.fixture(scope="module")
def translator(tiny_run):
    from seq2seq_attn.translator import Translator

    return Translator.load(tiny_run)


TEXTS = ["3 March 2021", "Saturday, 14 March 2015", "1 de agosto de 1964"]


@pytest.mark.parametrize("beam", [1, 3])
def test_token_log_probs_sum_to_the_score_and_words_are_the_texts(translator, beam):
    n_best = {} if beam == 1 else {"n_best": 3}
    results = translator.translate(TEXTS, beam, alignment="soft", scores=True, **n_best)
    for result in results:
        for one in [result, *(result.nbest or [])]:
            assert len(one.token_log_probs) == len(one.tokens)
            # no length penalty: the search's score is the sum of the rescored tokens'
            assert one.token_log_probs.sum() == pytest.approx(one.score, abs=1e-4)
            assert one.scores.sentence == pytest.approx(one.score / len(one.tokens), abs=1e-5)
            assert one.alignment.target_words == one.text.split()
            assert one.alignment.source_words == one.source.split()
            np.testing.assert_allclose(one.alignment.soft.sum(axis=1), 1.0, atol=1e-5)
            assert one.alignment_kind == "soft"


def test_no_output_token_gives_empty_scores(translator):
    result = translator.translate(TEXTS[:2], max_length=0, alignment="hard", scores=True)[0]
    assert len(result.tokens) == 0 and result.scores.tokens == [] and result.scores.words == []
    assert result.scores.sentence == 0.0 and result.alignment.pharaoh() == ""


def test_nothing_is_computed_unless_asked(translator):
    result = translator.translate(TEXTS[:1])[0]
    assert result.alignment is None and result.scores is None
    # the search's own token log-probs come with every result (`generate` returns them)
    assert len(result.token_log_probs) == len(result.tokens)
    result.token_log_probs = None  # a result made without them
    with pytest.raises(ValueError, match="token log-probs"):
        result.with_words(scores=True)
    with pytest.raises(ValueError, match="'hard', 'soft' or None"):
        translator.translate(TEXTS[:1], alignment="grow-diag")


def test_row_i_of_the_attention_belongs_to_token_i():
    # The step that chose y_i fed y_{i-1} and attended from the state before y_i: teacher
    # forcing [START] y_1 .. y_{n-1} gives, at position i, the same attention row and
    # logits whose arg-max is y_i (greedy), so row i of `attention` is y_i's, not y_{i-1}'s.
    # On the pretrained en-es model, whose outputs have many tokens.
    import tensorflow as tf

    from seq2seq_attn.commands import PRETRAINED_DIR
    from seq2seq_attn.translator import Translator

    translator = Translator.load(PRETRAINED_DIR)
    model = translator.model
    texts = ["In the beginning God created the heaven and the earth.", "Hello world, how are you?"]
    results = translator.translate(texts, alignment="hard")
    assert min(len(r.tokens) for r in results) >= 8
    for result in results:
        target_in = [model.start_id, *result.tokens[:-1].tolist()]
        logits, weights = model.teacher_forced(
            tf.constant([result.source_ids]), tf.constant([target_in])
        )
        np.testing.assert_allclose(weights.numpy()[0], result.attention, atol=1e-5)
        assert logits.numpy()[0].argmax(-1).tolist() == result.tokens.tolist()


def test_score_quality_by_hand():
    from seq2seq_attn.alignment import score_quality

    # scores ranked 1 2 3 4, quality ranked 1 3 2 4 (ties none): rho = 1 - 6 * 2 / (4 * 15)
    out = score_quality([-3.0, -2.0, -1.0, -0.5], [10.0, 40.0, 30.0, 90.0], share=0.25)
    assert out["spearman"] == pytest.approx(0.8)
    assert out["pearson"] == pytest.approx(np.corrcoef([-3, -2, -1, -0.5], [10, 40, 30, 90])[0, 1])
    assert (out["lowest_quality"], out["highest_quality"]) == (10.0, 90.0)
    # ties share their average rank: quality 5 5 5 9 ranks 2 2 2 4
    tied = score_quality([1.0, 2.0, 3.0, 4.0], [5.0, 5.0, 5.0, 9.0])
    assert tied["spearman"] == pytest.approx(np.corrcoef([1, 2, 3, 4], [2, 2, 2, 4])[0, 1])
    assert score_quality([1.0], [3.0])["spearman"] is None
    with pytest.raises(ValueError, match="one value per score"):
        score_quality([1.0, 2.0], [3.0])
