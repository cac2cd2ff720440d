"""Character-level tokenizer: ids, round trip, tags, chat template, save/load."""

import random

import pytest
from transformers import AutoTokenizer

from minir1.tokenizer import CHARS, R1_PREAMBLE, SPECIAL_TOKENS, TAG_TOKENS, build_tokenizer, format_prompt


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer()


def test_special_ids_in_order(tok):
    order = SPECIAL_TOKENS + TAG_TOKENS
    assert tok.convert_tokens_to_ids(list(order)) == list(range(8))
    assert (tok.pad_token_id, tok.bos_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2, 3)
    assert tok.padding_side == "left"
    assert len(tok) == 8 + len(CHARS) == 104


def test_every_char_is_one_token(tok):
    for c in CHARS:
        ids = tok.encode(c)
        assert len(ids) == 1 and ids[0] >= 8, repr(c)
    assert tok.encode("0123456789") == [tok.convert_tokens_to_ids(d) for d in "0123456789"]
    assert tok.encode("abc", add_special_tokens=True) == tok.encode("abc")  # nothing added


def test_tags_single_tokens_anywhere(tok):
    for tag in TAG_TOKENS:
        for text in (tag, f"x{tag}y", f" {tag} ", f"1{tag}{tag}2"):
            toks = tok.convert_ids_to_tokens(tok.encode(text))
            assert tag in toks and all(len(t) == 1 or t in TAG_TOKENS for t in toks), toks


def test_round_trip_random(tok):
    rng = random.Random(0)
    alphabet = list(CHARS) + list(TAG_TOKENS) + list(SPECIAL_TOKENS)
    for _ in range(300):
        s = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60)))
        assert tok.decode(tok.encode(s)) == s
    s = "  two  spaces\n\nand .,!? <think> a </think> <answer>42</answer> "
    assert tok.decode(tok.encode(s)) == s


def test_skip_special_keeps_tags(tok):
    ids = tok.encode("<bos><think>1</think><answer>2</answer><eos><pad><pad>")
    assert tok.decode(ids, skip_special_tokens=True) == "<think>1</think><answer>2</answer>"


def test_unknown_chars(tok):
    assert tok.convert_ids_to_tokens(tok.encode("a\té")) == ["a", "<unk>", "<unk>"]


def test_left_padding(tok):
    batch = tok(["1", "123"], padding=True)
    assert batch["input_ids"][0][:2] == [0, 0]
    assert batch["attention_mask"][0] == [0, 0, 1]


def test_chat_templates(tok):
    assert format_prompt(tok, "347+589") == "<bos>User: 347+589\nAssistant:"
    r1 = format_prompt(tok, "347+589", template="r1")
    assert r1 == "<bos>" + R1_PREAMBLE + " User: 347+589. Assistant:"
    assert r1.startswith("<bos>A conversation between User and Assistant. The user asks a question")
    assert "i.e., <think> reasoning process here </think> <answer> answer here </answer>. User:" in r1
    msgs = [{"role": "user", "content": "1+2"}]
    assert tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True) == r1.replace("347+589", "1+2")
    full = msgs + [{"role": "assistant", "content": "<answer>3</answer>"}]
    assert (
        tok.apply_chat_template(full, tokenize=False, compact=True)
        == "<bos>User: 1+2\nAssistant:<answer>3</answer><eos>"
    )
    assert tok.encode(format_prompt(tok, "1"))[0] == tok.bos_token_id


def test_format_prompt_bad_template(tok):
    with pytest.raises(ValueError, match="compact.*r1"):
        format_prompt(tok, "1+1", template="chatml")


def test_save_load_round_trip(tok, tmp_path):
    tok.save_pretrained(tmp_path)
    tok2 = AutoTokenizer.from_pretrained(tmp_path)
    s = "<bos>User: 9*7\nAssistant:<think>9*7=63</think> <answer>63</answer><eos>"
    assert tok2.encode(s) == tok.encode(s)
    assert tok2.decode(tok2.encode(s)) == s
    assert tok2.padding_side == "left" and tok2.pad_token_id == 0
    assert tok2.chat_template == tok.chat_template
    for template in ("compact", "r1"):
        assert format_prompt(tok2, "5+5", template) == format_prompt(tok, "5+5", template)
