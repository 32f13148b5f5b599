"""``openrlhf-serve``: a small OpenAI-compatible chat server over the project's HF rollout engine.

One model per process, so a judge or a generative reward model can be a real model on loopback and the reward
service (``remote_rm``) talks to it as to any OpenAI-compatible endpoint (vLLM's server, a hosted API).

- :mod:`openrlhf.serve.schema`: the request and response bodies (OpenAI's chat completions contract);
- :mod:`openrlhf.serve.messages`: OpenAI messages -> a :class:`~openrlhf.data.sample.Sample` and its images;
- :mod:`openrlhf.serve.model`: the engine and the prompt encoder the trainer uses;
- :mod:`openrlhf.serve.batching`: concurrent requests with equal sampling parameters share one engine call;
- :mod:`openrlhf.serve.app`: the FastAPI app; :mod:`openrlhf.cli.serve`: the entry point;
- :mod:`openrlhf.serve.local`: the server as a subprocess on loopback (the R1-Reward demo's judge, the tests).
"""
