"""Character-level tokenizer and the R1 prompt template.

Every printable ASCII character (``" "`` to ``"~"``) and ``"\\n"`` is one token, so digits are
single tokens and ``decode(encode(s)) == s`` for any such string. Ids 0..7 are, in order::

    <pad> <bos> <eos> <unk> <think> </think> <answer> </answer>

The four tags are single tokens wherever they appear in text. Any other character (tab,
non-ASCII) maps to ``<unk>``.

Decisions:

* ``<pad> <bos> <eos> <unk>`` are *special* tokens; the four tags are ordinary added tokens.
  So ``decode(ids, skip_special_tokens=True)`` drops pad/bos/eos/unk and keeps the tags,
  which is what a completion needs (rewards read the tags).
* Encoding adds nothing (no automatic ``<bos>``/``<eos>``); ``<bos>`` comes from the chat
  template, ``<eos>`` is appended by whoever builds training targets.
* ``padding_side="left"`` (batched generation continues from the right edge).

Deviation from DeepSeek-R1 (Table 1 of the paper): R1-Zero prompts every question with a
~400-character preamble. Our models are tiny and character-level, so that preamble would
multiply the compute per sample. The default chat template renders R1's template exactly
(prefixed with ``<bos>``), but the lab uses the ``compact`` variant,
``<bos>User: {question}\\nAssistant:``, selected with ``compact=True``.

>>> tok = build_tokenizer()
>>> tok.convert_ids_to_tokens(tok.encode("<think>7+9</think>"))
['<think>', '7', '+', '9', '</think>']
>>> format_prompt(tok, "347+589")
'<bos>User: 347+589\\nAssistant:'
"""

from __future__ import annotations

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>", "<unk>")
TAG_TOKENS = ("<think>", "</think>", "<answer>", "</answer>")
CHARS = "\n" + "".join(chr(c) for c in range(32, 127))  # "\n" plus printable ASCII
TEMPLATES = ("compact", "r1")

R1_PREAMBLE = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant "
    "solves it. The assistant first thinks about the reasoning process in the mind and then "
    "provides the user with the answer. The reasoning process and answer are enclosed within "
    "<think> </think> and <answer> </answer> tags, respectively, i.e., <think> reasoning "
    "process here </think> <answer> answer here </answer>."
)

# Renders the first user message; with add_generation_prompt=False an assistant message that
# follows is appended directly after "Assistant:" and closed with <eos>.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}"
    "{% if compact is defined and compact %}User: {{ message['content'] }}\nAssistant:"
    "{% else %}" + R1_PREAMBLE + " User: {{ message['content'] }}. Assistant:{% endif %}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] }}{{ eos_token }}"
    "{% endif %}"
    "{% endfor %}"
)


def build_tokenizer() -> PreTrainedTokenizerFast:
    """Build the character-level tokenizer (vocabulary size 8 + 96 = 104).

    >>> tok = build_tokenizer()
    >>> len(tok), tok.pad_token_id, tok.bos_token_id, tok.eos_token_id
    (104, 0, 1, 2)
    >>> tok.decode(tok.encode("a b\\n<answer>12</answer>"))
    'a b\\n<answer>12</answer>'
    """
    vocab = {t: i for i, t in enumerate(SPECIAL_TOKENS + TAG_TOKENS + tuple(CHARS))}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    # One piece per character ("[\s\S]" rather than "." so that newlines match too).
    core.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    core.decoder = decoders.Fuse()  # join characters with no separator
    core.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    core.add_tokens([AddedToken(t, special=False, normalized=False) for t in TAG_TOKENS])
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token="<pad>",
        bos_token="<bos>",
        eos_token="<eos>",
        unk_token="<unk>",
        padding_side="left",
        clean_up_tokenization_spaces=False,
        model_input_names=["input_ids", "attention_mask"],
    )
    tok.chat_template = CHAT_TEMPLATE
    return tok


def chat_prompt(tokenizer, question: str, system: str | None = None) -> str:
    """``question`` as a user turn in the tokenizer's own chat template, ready for the assistant's reply.

    For a real checkpoint's tokenizer (:mod:`minir1.checkpoint`): its template renders the turn (and
    ``system``, when given, as a system turn before it; else the template's default). A tokenizer with
    no chat template gets the book's compact one (``system`` is then dropped).

    >>> chat_prompt(build_tokenizer(), "3 5 7 -> 22").endswith("User: 3 5 7 -> 22. Assistant:")
    True
    """
    messages = [{"role": "user", "content": question}]
    if getattr(tokenizer, "chat_template", None):
        messages = ([{"role": "system", "content": system}] if system else []) + messages
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return tokenizer.apply_chat_template(
        messages, chat_template=CHAT_TEMPLATE, tokenize=False, add_generation_prompt=True, compact=True
    )


def format_prompt(tokenizer: PreTrainedTokenizerFast, question: str, template: str = "compact") -> str:
    """Render ``question`` as a prompt ending in ``Assistant:`` (the model continues from there).

    ``template`` is ``"compact"`` (``<bos>User: {question}\\nAssistant:``) or ``"r1"`` (R1's
    full preamble, ``<bos>A conversation ... User: {question}. Assistant:``), or ``"chat"``: the
    tokenizer's own chat template, for a real checkpoint (:func:`chat_prompt`).

    >>> format_prompt(build_tokenizer(), "3 5 7 -> 22", template="r1").endswith("User: 3 5 7 -> 22. Assistant:")
    True
    """
    if template == "chat":
        return chat_prompt(tokenizer, question)
    if template not in TEMPLATES:
        raise ValueError(f"template must be one of {TEMPLATES + ('chat',)}; got {template!r}")
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": question}],
        tokenize=False,
        add_generation_prompt=True,
        compact=(template == "compact"),
    )
