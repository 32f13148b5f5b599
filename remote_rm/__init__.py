"""remote_rm: the reward service (OpenRLHF remote-RM protocol) with R1-style rule rewards.

Runs with only the ``reward`` extra (FastAPI, uvicorn, nltk, rouge-score, sacrebleu, math-verify,
pycocotools, openai, ...): it never imports torch, ray, transformers or ``openrlhf``.
Start it with ``openrlhf-reward-server`` (:mod:`remote_rm.cli`).
"""

__version__ = "0.1.0"
