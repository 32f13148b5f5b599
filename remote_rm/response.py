"""Cut the model's response out of the query that OpenRLHF sends (the decoded prompt + response).

Order of tries:

1. the query starts with the sample's prompt: the response is what follows it (cannot be fooled by
   a response that writes a fake assistant header);
2. the text after the *last* assistant header of the configured chat template(s) (in "auto", the
   special-token headers of ChatML/Qwen, Llama 3 and DeepSeek first; the plain "Assistant:" only when
   none of those occurs, since a response may well write "Assistant:" itself);
3. the whole query.

Then the response is cut at the first end-of-turn marker (``<|im_end|>``, ``<|eot_id|>``, ...; what
follows is padding or a next turn) and stripped.
"""

from __future__ import annotations

from dataclasses import dataclass

# Assistant headers and end-of-turn markers of the common chat templates.
TEMPLATES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "chatml": (("<|im_start|>assistant\n", "<|im_start|>assistant"), ("<|im_end|>", "<|endoftext|>")),
    "llama3": (
        ("<|start_header_id|>assistant<|end_header_id|>\n\n", "<|start_header_id|>assistant<|end_header_id|>"),
        ("<|eot_id|>", "<|end_of_text|>"),
    ),
    "deepseek": (("<｜Assistant｜>",), ("<｜end▁of▁sentence｜>",)),
    "plain": (("Assistant:", "ASSISTANT:"), ("</s>",)),
}
AUTO_ORDER = ("chatml", "llama3", "deepseek")
AUTO_FALLBACK = ("plain",)


@dataclass(frozen=True)
class ResponseRule:
    """How to find the response: the assistant headers and end markers to use, and prompt-prefix stripping."""

    headers: tuple[str, ...]
    end_markers: tuple[str, ...]
    strip_prompt: bool = True
    fallback_headers: tuple[str, ...] = ()


def make_rule(
    template: str = "auto",
    headers: list[str] | None = None,
    end_markers: list[str] | None = None,
    strip_prompt: bool = True,
) -> ResponseRule:
    """The rule for a template name ("auto", "chatml", "llama3", "deepseek", "plain", "none"), with overrides.

    "auto" tries the special-token templates' headers (the latest header in the query wins), then the
    plain one, and uses all end markers.
    """
    fallback: tuple[str, ...] = ()
    if template == "auto":
        names = AUTO_ORDER
        fallback = AUTO_FALLBACK
    elif template == "none":
        names = ()
    elif template in TEMPLATES:
        names = (template,)
    else:
        raise ValueError(f"unknown chat template {template!r}: auto, none, {', '.join(TEMPLATES)}")
    default_headers = tuple(h for n in names for h in TEMPLATES[n][0])
    default_ends = tuple(dict.fromkeys(e for n in names + fallback for e in TEMPLATES[n][1]))
    return ResponseRule(
        headers=tuple(headers) if headers is not None else default_headers,
        end_markers=tuple(end_markers) if end_markers is not None else default_ends,
        strip_prompt=strip_prompt,
        fallback_headers=() if headers is not None else tuple(h for n in fallback for h in TEMPLATES[n][0]),
    )


def _after_last_header(query: str, headers: tuple[str, ...]) -> int:
    """Index just after the latest header in ``query`` (the longer one at a tie), or -1."""
    best_end = -1
    for header in headers:
        pos = query.rfind(header)
        if pos >= 0 and pos + len(header) > best_end:
            best_end = pos + len(header)
    return best_end


def extract_response(query: str, prompt: str, rule: ResponseRule) -> str:
    """The response inside ``query`` (see the module docstring for the rule). Linear time."""
    start = -1
    if rule.strip_prompt and prompt and query.startswith(prompt):
        start = len(prompt)
    else:
        start = _after_last_header(query, rule.headers)
        if start < 0:
            start = _after_last_header(query, rule.fallback_headers)
    response = query[start:] if start >= 0 else query
    cut = len(response)
    for marker in rule.end_markers:
        pos = response.find(marker, 0, cut)
        if pos >= 0:
            cut = pos
    return response[:cut].strip()
