"""The embedded demo pipelines (``openrlhf-train`` with no --config): they compose the whole package.

- pipeline.py: a tiny (or a real small) model, SFT warm start on a generated task, evaluation, GRPO, evaluation.
- preference.py: the R1-Reward demo (``demo.task: preference``), a generative reward model trained and judged
  with a served judge.

This layer sits above the trainer, the evaluators and the server (it uses all three) and below the entry points
(openrlhf/cli/train.py runs it); tests/test_layers.py holds the order.
"""
