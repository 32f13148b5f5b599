"""openrlhf-serve end to end: the real server (subprocess, loopback, tiny Qwen2.5-VL) called with the real
``openai`` client; the replies parse as openai's own types. Plus the app's auth and error mapping on a stub
model, and the CLI's refusal of an open bind without a token."""

from __future__ import annotations

import base64
import io

import httpx
import openai
import pytest
from fastapi.testclient import TestClient
from openai.types.chat import ChatCompletion
from PIL import Image
from serve_helpers import alone_then_together, serving
from serve_helpers import user as serve_user

from openrlhf.cli.serve import main as serve_main
from openrlhf.serve.app import create_app, field_path
from openrlhf.serve.model import cut_at_stop
from openrlhf.serve.schema import ModelCard, RequestError

NAME = "tiny-vlm"


def png_data_url(colour=(200, 30, 30), size=(32, 32)) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


@pytest.fixture(scope="module")
def server_and_client(tiny_vlm_path, tmp_path_factory):
    with serving(tiny_vlm_path, tmp_path_factory.mktemp("serve"), name=NAME, args=["--max-new-tokens", "12"]) as both:
        yield both


@pytest.fixture(scope="module")
def served(server_and_client):
    return server_and_client[0]


@pytest.fixture(scope="module")
def client(server_and_client) -> openai.OpenAI:
    return server_and_client[1]


def user(text: str) -> list[dict]:
    return serve_user(text, system="You are terse.")


def test_models_and_health_name_the_served_model(served, client):
    assert [m.id for m in client.models.list().data] == [NAME]
    assert client.models.retrieve(NAME).id == NAME
    assert httpx.get(f"{served.base_url}/health").json() == {"status": "ok", "model": NAME}


def test_text_only_greedy_is_a_chat_completion_cut_at_max_tokens(client):
    reply = client.chat.completions.create(model=NAME, messages=user("Say hi."), max_tokens=3, temperature=0)
    assert isinstance(reply, ChatCompletion) and reply.object == "chat.completion" and reply.model == NAME
    assert reply.id.startswith("chatcmpl-") and len(reply.choices) == 1
    choice = reply.choices[0]
    assert choice.index == 0 and choice.message.role == "assistant" and isinstance(choice.message.content, str)
    assert choice.finish_reason == "length"
    assert reply.usage.completion_tokens == 3
    assert reply.usage.prompt_tokens > 5
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + 3
    again = client.chat.completions.create(model=NAME, messages=user("Say hi."), max_completion_tokens=3, temperature=0)
    assert again.choices[0].message.content == choice.message.content  # greedy; the newer field name


def test_max_tokens_above_the_cap_is_cut_to_the_cap(client):
    reply = client.chat.completions.create(model=NAME, messages=user("Go on."), max_tokens=500, temperature=0)
    assert reply.usage.completion_tokens <= 12  # --max-new-tokens 12
    if reply.choices[0].finish_reason == "length":
        assert reply.usage.completion_tokens == 12


def test_image_data_url_with_n_2_and_a_seed(client):
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": png_data_url()}},
                {"type": "text", "text": "What colour is it?"},
            ],
        }
    ]
    kwargs = {"model": NAME, "messages": messages, "n": 2, "max_tokens": 4, "temperature": 1.0, "seed": 7}
    reply = client.chat.completions.create(**kwargs)
    assert [c.index for c in reply.choices] == [0, 1]
    assert all(c.finish_reason in ("stop", "length") for c in reply.choices)
    assert 2 <= reply.usage.completion_tokens <= 8
    same_text = [{"role": "user", "content": [{"type": "text", "text": "What colour is it?"}]}]
    text_only = client.chat.completions.create(model=NAME, messages=same_text, max_tokens=1)
    assert reply.usage.prompt_tokens > text_only.usage.prompt_tokens  # the image's tokens are counted
    same = client.chat.completions.create(**kwargs)
    assert [c.message.content for c in same.choices] == [c.message.content for c in reply.choices]


def test_stop_string_cuts_the_text_and_finishes_with_stop(client):
    base = client.chat.completions.create(model=NAME, messages=user("Talk."), max_tokens=12, temperature=0)
    text = base.choices[0].message.content
    marks = [ch for ch in text[1:] if not ch.isspace()]
    if not marks:
        pytest.fail(f"the greedy reply has no character to stop at: {text!r}")
    stop = marks[0]
    cut = client.chat.completions.create(model=NAME, messages=user("Talk."), max_tokens=12, temperature=0, stop=[stop])
    assert cut.choices[0].message.content == text[: text.index(stop, 1 if text[0] == stop else 0)]
    assert cut.choices[0].finish_reason == "stop"


def test_http_image_url_is_refused_naming_the_field(client):
    messages = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}]
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=NAME, messages=messages, max_tokens=2)
    assert info.value.status_code == 400
    assert "messages[0].content[0].image_url.url" in info.value.message and "data URL" in info.value.message
    assert info.value.body["param"] == "messages[0].content[0].image_url.url"


@pytest.mark.parametrize(
    ("messages", "param", "words"),
    [
        ([{"content": "hi"}], "messages[0].role", "field required"),
        ([{"role": "user", "content": [{"type": "image", "url": "x"}]}], "messages[0].content[0]", "content part"),
        ([{"role": "user", "content": {"text": "hi"}}], "messages[0].content", "string or a non-empty list"),
        ([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,@@"}}]}],
         "messages[0].content[0].image_url.url", "not valid base64"),
        ([{"role": "assistant", "content": "hi"}], "messages", "no user message"),
    ],
)  # fmt: skip
def test_bad_message_shapes_are_400_naming_the_field(client, messages, param, words):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=NAME, messages=messages, max_tokens=2)
    assert info.value.body["param"] == param and words in info.value.message, info.value.message


def test_bad_sampling_fields_and_unknown_fields_are_400(client):
    with pytest.raises(openai.BadRequestError, match="temperature"):
        client.chat.completions.create(model=NAME, messages=user("x"), temperature=5)
    with pytest.raises(openai.BadRequestError, match="n: 99 is over"):
        client.chat.completions.create(model=NAME, messages=user("x"), n=99)
    with pytest.raises(openai.BadRequestError, match="logprobs: this server does not support"):
        client.chat.completions.create(model=NAME, messages=user("x"), logprobs=True)


def test_unknown_model_is_404_like_openai(client):
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="gpt-4o", messages=user("x"), max_tokens=2)
    assert info.value.body["code"] == "model_not_found" and "gpt-4o" in info.value.message
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4o")


def test_concurrent_requests_share_engine_calls_and_get_their_own_answers(served, client):
    """Greedy answers to different prompts: asked one at a time, then all at once from threads (batched
    into fewer engine calls, left-padded together); each prompt gets the same answer either way."""
    prompts = [f"Count to {k} and say {word}." for k, word in enumerate(["red", "a", "circle", "blue", "go", "x"])]

    alone, together, before, after = alone_then_together(served, client, NAME, prompts, system="You are terse.")
    assert together == alone
    assert after["requests"] - before["requests"] == len(prompts)
    assert after["engine_calls"] - before["engine_calls"] < len(prompts), (before, after)
    assert after["largest_batch"] > 1 and after["max_batch_size"] == 32


# ---------------------------------------------------------------------- the app alone (no model loaded)


class StubModel:
    name = "stub"

    def card(self) -> ModelCard:
        return ModelCard(id=self.name, created=0)

    def complete(self, request):
        raise RequestError(400, "messages", "messages: stub")


def test_token_is_required_on_v1_but_not_on_health():
    http = TestClient(create_app(StubModel(), token="s3cret"))
    assert http.get("/health").status_code == 200
    refused = http.get("/v1/models")
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"
    assert http.get("/v1/models", headers={"Authorization": "Bearer s3cret"}).json()["data"][0]["id"] == "stub"
    body = {"model": "stub", "messages": [{"role": "user", "content": "x"}]}
    assert http.post("/v1/chat/completions", json=body).status_code == 401


def test_field_path_and_stop_cut():
    assert field_path(("body", "messages", 0, "content", "list[str]", 2)) == "messages[0].content[2]"
    assert field_path(("body", "stop", "str")) == "stop"
    assert cut_at_stop("abc</answer>xyz", ["</answer>", "x"]) == ("abc", True)
    assert cut_at_stop("abc", ["z"]) == ("abc", False)


def test_cli_refuses_an_open_bind_without_a_token(tiny_vlm_path, monkeypatch, capsys):
    monkeypatch.delenv("OPENRLHF_SERVE_TOKEN", raising=False)
    assert serve_main(["--model", str(tiny_vlm_path), "--host", "0.0.0.0"]) == 2
    assert "OPENRLHF_SERVE_TOKEN" in capsys.readouterr().err
    assert serve_main(["--model", str(tiny_vlm_path), "--token-env", "NO_SUCH_VAR_X"]) == 2
    assert serve_main(["--model", "/no/such/folder"]) == 2
