"""R1-Reward's pairwise comparison: the question a generative reward model is asked, and how its verdict is read.

This is the one copy of both. The trainer's R1-Reward rows and the reward-model evaluation
(``openrlhf.data.prompts``, ``openrlhf.eval.pairwise_metrics``) import them from here, and so does the reward
service's ``generative_rm`` component (:mod:`remote_rm.generative_rm`): a judge is asked in production the
question it was trained and evaluated on. It lives in ``remote_rm`` because the reward service ships alone
(its image has no ``openrlhf``), while the trainer's install always has ``remote_rm``.

Verdict: the last ``<answer>`` content of the judge's output (else its last ``\\boxed{}``) must name exactly one
of 1 and 2 as a stand-alone digit (:func:`remote_rm.rewards.accuracy.preferred_response`, the rule of
``preference_accuracy``); anything else is no verdict.

The module imports nothing at load time (the reward functions are imported on first use), so the trainer's
prompt code gets the text without the reward service's dependencies (nltk, ...).
"""

from __future__ import annotations

R1_REWARD_JUDGE_PROMPT = (
    "You are an impartial evaluator. Compare the two responses to the question about the image(s), think inside "
    "<think> </think> tags, then answer 1 or 2 inside <answer> </answer> tags.\n[Question]: {question}\n"
    "[Response 1]: {first}\n[Response 2]: {second}"
)


def r1_reward_judge_prompt(question: str, first: str, second: str) -> str:
    """R1-Reward's comparison question with ``first`` as Response 1 and ``second`` as Response 2."""
    return R1_REWARD_JUDGE_PROMPT.format(question=question, first=first, second=second)


def preference_verdict(text: str | None) -> int | None:
    """1 or 2, the position the judge's output prefers, or None when its answer names neither or both."""
    from remote_rm.rewards.accuracy import preferred_response
    from remote_rm.rewards.extract import final_answer

    if not text:
        return None
    answer = final_answer(text, "answer", boxed_fallback=True)
    return None if answer is None else preferred_response(answer)
