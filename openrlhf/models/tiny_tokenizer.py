"""A tokenizer trained offline for the tiny models: Qwen2's byte-level BPE rules on a generated corpus.

The BPE is trained with exactly the normaliser (NFC), pre-tokeniser (Qwen2's split regex, then byte level)
and decoder that ``Qwen2Tokenizer`` rebuilds on load, so token ids survive ``save_pretrained`` and
``AutoTokenizer.from_pretrained``. Qwen's regex splits numbers into single digits (``\\p{N}``), so
``"12 + 7 = 19"`` becomes digits and operators, which keeps small arithmetic learnable.

Special tokens follow Qwen2.5(-VL): ``<|endoftext|>`` (padding), ``<|im_start|>``, ``<|im_end|>``
(end of a turn, the eos), and the vision markers. The reasoning tags ``<think> </think> <answer>
</answer>`` are added as *normal* tokens: one id each, and kept by ``decode(skip_special_tokens=True)``.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator

from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers, trainers
from tokenizers.models import BPE
from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX, Qwen2Tokenizer

PAD_TOKEN = "<|endoftext|>"
EOS_TOKEN = "<|im_end|>"
SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
TAG_TOKENS = ("<think>", "</think>", "<answer>", "</answer>")

# Qwen2.5-VL's ChatML template (system/user/assistant; image and video parts become vision markers),
# without the default system prompt so the tiny models see short sequences.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}"
    "{{ message['content'] }}"
    "{% else %}"
    "{% for part in message['content'] %}"
    "{% if part['type'] == 'image' or 'image' in part or 'image_url' in part %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'video' or 'video' in part %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in part %}"
    "{{ part['text'] }}"
    "{% endif %}"
    "{% endfor %}"
    "{% endif %}"
    "<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}"
    "<|im_start|>assistant\n"
    "{% endif %}"
)

_COMMON_WORDS = """
the of and to a in is it you that he was for on are with as his they be at one have this from or had by
word but what some we can out other were all there when up use your how said an each she which do their
time if will way about many then them write would like so these her long make thing see him two has look
more day could go come did number sound no most people my over know water than call first who may down
side been now find any new work part take get place made live where after back little only round man year
came show every good me give our under name very through just form sentence great think say help low line
differ turn cause much mean before move right boy old too same tell does set three want air well also play
small end put home read hand port large spell add even land here must big high such follow act why ask men
change went light kind off need house picture try us again animal point mother world near build self earth
father head stand own page should country found answer school grow study still learn plant cover food sun
four between state keep eye never last let thought city tree cross farm hard start might story saw far sea
draw left late run while press close night real life few north open seem together next white children begin
got walk example ease paper group always music those both mark often letter until mile river car feet care
second book carry took science eat room friend began idea fish mountain stop once base hear horse cut sure
watch color face wood main enough plain girl usual young ready above ever red list though feel talk bird
soon body dog family direct pose leave song measure door product black short numeral class wind question
happen complete ship area half rock order fire south problem piece told knew pass since top whole king space
heard best hour better true during hundred five remember step early hold west ground interest reach fast
verb sing listen six table travel less morning ten simple several vowel toward war lay against pattern slow
center love person money serve appear road map rain rule govern pull cold notice voice unit power town fine
certain fly fall lead cry dark machine note wait plan figure star box noun field rest correct able pound done
beauty drive stood contain front teach week final gave green oh quick develop ocean warm free minute strong
special mind behind clear tail produce fact street inch multiply nothing course stay wheel full force blue
object decide surface deep moon island foot system busy test record boat common gold possible plane stead
dry wonder laugh thousand ago ran check game shape equate hot miss brought heat snow tire bring yes distant
fill east paint language among circle square triangle rectangle star count image left right top bottom
""".split()

_SHAPES = ["circle", "square", "triangle", "rectangle", "star", "dot", "line", "box"]
_COLORS = ["red", "green", "blue", "yellow", "black", "white", "orange", "purple", "gray"]
_QUESTIONS = [
    "What is {a} {op} {b}?",
    "Compute {a} {op} {b}.",
    "How many {shape}s are in the image?",
    "Where is the {color} {shape}? Answer with a box.",
    "Is there a {color} {shape} in the picture?",
    "Which shape is {color}? A. {shape} B. {shape2} C. {shape3} D. none",
]
_SYLLABLE_ONSETS = ["", "b", "c", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "st", "tr"]
_SYLLABLE_VOWELS = ["a", "e", "i", "o", "u", "ou", "ea", "io"]
_SYLLABLE_CODAS = ["", "n", "r", "s", "t", "l", "ng", "nd", "st"]


def _pseudo_word(rng: random.Random) -> str:
    return "".join(
        rng.choice(_SYLLABLE_ONSETS) + rng.choice(_SYLLABLE_VOWELS) + rng.choice(_SYLLABLE_CODAS)
        for _ in range(rng.randint(1, 3))
    )


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(_COMMON_WORDS) if rng.random() < 0.85 else _pseudo_word(rng) for _ in range(rng.randint(4, 14))]
    text = " ".join(words)
    return text[0].upper() + text[1:] + rng.choice([".", ".", ".", "?", "!", ","])


def _arithmetic(rng: random.Random) -> tuple[str, str]:
    a, b = rng.randint(0, 999), rng.randint(0, 999)
    op = rng.choice(["+", "-", "*"])
    value = a + b if op == "+" else a - b if op == "-" else a * b
    return f"{a} {op} {b}", str(value)


def _question(rng: random.Random) -> str:
    shapes = rng.sample(_SHAPES, 3)
    a, b = rng.randint(0, 99), rng.randint(0, 99)
    return rng.choice(_QUESTIONS).format(
        a=a, b=b, op=rng.choice("+-*"), shape=shapes[0], shape2=shapes[1], shape3=shapes[2], color=rng.choice(_COLORS)
    )


def tokenizer_corpus(seed: int = 0, num_lines: int = 30000) -> Iterator[str]:
    """Deterministic training text: English-ish sentences, arithmetic, task questions, JSON boxes, chat pieces.

    The special tokens and tags are not in the text (they are added tokens, split off before BPE).
    """
    rng = random.Random(seed)
    for i in range(num_lines):
        kind = i % 6
        if kind == 0:
            yield _sentence(rng) + " " + _sentence(rng)
        elif kind == 1:
            expr, value = _arithmetic(rng)
            yield f"{expr} = {value}. Let me think step by step: {expr} is {value}, so the answer is {value}."
        elif kind == 2:
            yield "user\n" + _question(rng) + "\nassistant\n" + _sentence(rng)
        elif kind == 3:
            box = [rng.randint(0, 999) for _ in range(4)]
            yield (
                json.dumps({"bbox_2d": box, "label": rng.choice(_SHAPES)})
                + f" [{box[0]}, {box[1]}, {box[2]}, {box[3]}]"
            )
        elif kind == 4:
            yield f"system\nYou are a helpful assistant. {_sentence(rng)}\nThe answer is {rng.choice(['yes', 'no', 'A', 'B', 'C', 'D'])}."
        else:
            n = rng.randint(0, 12)
            yield f"There are {n} {rng.choice(_COLORS)} {rng.choice(_SHAPES)}s. {_sentence(rng)}\n\n"


def _qwen2_bpe_pipeline() -> Tokenizer:
    """An untrained BPE with Qwen2Tokenizer's normaliser, pre-tokeniser and decoder."""
    tok = Tokenizer(
        BPE(unk_token=None, continuing_subword_prefix="", end_of_word_suffix="", fuse_unk=False, byte_fallback=False)
    )
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    return tok


def train_tiny_tokenizer(seed: int = 0, vocab_size: int = 2048, model_max_length: int = 4096) -> Qwen2Tokenizer:
    """Train the byte-level BPE and wrap it as a left-padding ``Qwen2Tokenizer`` with the ChatML template.

    The BPE gets ``vocab_size - len(SPECIAL_TOKENS) - len(TAG_TOKENS)`` entries (fewer if the corpus runs
    out of merges); the special tokens and then the tags take the ids after it, so ``len(tokenizer) <=
    vocab_size``.
    """
    num_added = len(SPECIAL_TOKENS) + len(TAG_TOKENS)
    if vocab_size <= 256 + num_added:
        raise ValueError(f"vocab_size {vocab_size} is too small: byte-level BPE needs > {256 + num_added}")
    tok = _qwen2_bpe_pipeline()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - num_added,
        min_frequency=2,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
    )
    tok.train_from_iterator(tokenizer_corpus(seed), trainer)
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in TAG_TOKENS])
    return Qwen2Tokenizer(
        tokenizer_object=tok,
        unk_token=None,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        padding_side="left",
        model_max_length=model_max_length,
        chat_template=CHAT_TEMPLATE,
    )
