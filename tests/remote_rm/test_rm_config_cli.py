"""Recipes config (errors name file:line), the CLI's exit codes, and the bearer token."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from nltk.stem.porter import PorterStemmer
from nltk.translate.meteor_score import meteor_score
from rm_helpers import start_server, stop_server

from remote_rm.cli import main
from remote_rm.settings import ConfigError, load_config, parse_config
from remote_rm.wordnet import NoWordNet

REPO = Path(__file__).resolve().parents[2]


def test_example_recipes_file_equals_the_built_in_recipes():
    example = load_config(REPO / "configs" / "reward_recipes.yaml")
    assert example.model_dump() == load_config().model_dump()
    assert example.recipe_for(None) == "math" and example.recipe_for("rec") == "rec"
    assert example.recipes["preference"].combine == "r1_reward"
    assert (example.recipes["preference"].format_weight, example.recipes["preference"].consistency_weight) == (0.5, 0.5)


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            "default_recipe: a\nrecipes:\n  a:\n    components:\n      - {fn: nope}\n",
            "x.yaml:5: recipes.a.components.0.fn",
        ),
        (
            "default_recipe: a\nrecipes:\n  a:\n    components:\n      - fn: format\n        params: {mod: 1}\n",
            "x.yaml:6: recipes.a.components.0.params.mod: format takes no parameter mod",
        ),
        ("default_recipe: b\nrecipes:\n  a:\n    components: [{fn: format}]\n", "default_recipe 'b' is not a recipe"),
        (
            "default_recipe: a\ntasks: {rec: zzz}\nrecipes:\n  a:\n    components: [{fn: format}]\n",
            "tasks.rec: recipe 'zzz'",
        ),
        (
            "default_recipe: a\nrecipes:\n  a:\n    components:\n      - {fn: format, weight: heavy}\n",
            "x.yaml:5: recipes.a.components.0.weight",
        ),
        (
            "default_recipe: a\nrecipes:\n  a:\n    combine: r1_reward\n    components: [{fn: format}]\n",
            "needs components named accuracy, consistency",
        ),
        ("default_recipe: a\nrecipez: {}\n", "x.yaml:2: recipez: Extra inputs are not permitted"),
        ("default_recipe: [unclosed\n", "x.yaml:2: invalid YAML"),
    ],
)
def test_config_errors_name_file_line_and_key(text, expected):
    with pytest.raises(ConfigError) as info:
        parse_config(text, "x.yaml")
    assert expected in str(info.value)


def test_custom_reward_from_a_file(tmp_path):
    (tmp_path / "my_reward.py").write_text(
        "def keyword(response, label, word='cat'):\n    return float(word in response)\n"
    )
    cfg = parse_config(
        f"default_recipe: a\nrecipes:\n  a:\n    components:\n      - {{fn: '{tmp_path}/my_reward.py:keyword', params: {{word: dog}}}}\n"
    )
    assert cfg.recipes["a"].components[0].params == {"word": "dog"}
    with pytest.raises(ConfigError, match="takes no parameter"):
        parse_config(
            f"default_recipe: a\nrecipes:\n  a:\n    components:\n      - {{fn: '{tmp_path}/my_reward.py:keyword', params: {{w: 1}}}}\n"
        )
    with pytest.raises(ConfigError, match="has no function"):
        parse_config(
            f"default_recipe: a\nrecipes:\n  a:\n    components:\n      - {{fn: '{tmp_path}/my_reward.py:nope'}}\n"
        )


def test_console_script_points_at_cli_main():
    lines = (REPO / "pyproject.toml").read_text().splitlines()
    assert 'openrlhf-reward-server = "remote_rm.cli:main"' in [line.strip() for line in lines]


def test_cli_exit_codes(tmp_path, capsys, monkeypatch):
    bad = tmp_path / "bad.yaml"
    bad.write_text("default_recipe: a\nrecipes: {}\n")
    assert main(["--config", str(bad)]) == 2
    assert "bad.yaml:1" in capsys.readouterr().err
    assert main(["--config", str(tmp_path / "missing.yaml")]) == 2
    assert main(["--token-env", "RM_TOKEN_THAT_IS_NOT_SET"]) == 2
    assert main(["--workers", "0"]) == 2
    monkeypatch.setenv("REMOTE_RM_CACHE_DIR", str(tmp_path / "cache"))
    assert main(["--check"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["config"]["default_recipe"] == "math" and "available" in printed["wordnet"]


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "rm.example.org"])
def test_a_bind_beyond_loopback_needs_a_token_or_insecure(host, capsys, monkeypatch):
    monkeypatch.delenv("REMOTE_RM_TOKEN", raising=False)
    assert main(["--host", host]) == 2
    err = capsys.readouterr().err
    assert f"--host {host} binds beyond loopback without a token" in err and "REMOTE_RM_TOKEN" in err
    assert "--insecure" in err


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_needs_no_token(host):
    from remote_rm.cli import is_loopback

    assert is_loopback(host)


def test_cli_runs_as_a_module_and_prints_help():
    out = subprocess.run([sys.executable, "-m", "remote_rm.cli", "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "--token-env" in out.stdout and "--workers" in out.stdout


MINIMAL = {
    "default_recipe": "exact",
    "recipes": {
        "exact": {"components": [{"fn": "exact_match", "params": {"fallback_to_response": True}}]},
        "meteor": {"components": [{"fn": "meteor", "params": {"answer_tag": ""}}]},
    },
    "tasks": {"generative": "meteor"},
    "wordnet": {"enabled": False},
}


def test_bearer_token_is_required(tmp_path):
    server, log = start_server(MINIMAL, tmp_path, token="s3cret-token", workers=1)
    try:
        body = {"query": ["yes"], "prompts": [""], "labels": ["yes"]}
        assert httpx.post(server.url, json=body, timeout=30).status_code == 401
        wrong = httpx.post(server.url, json=body, headers={"Authorization": "Bearer nope"}, timeout=30)
        assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
        assert server.score(["yes"], ["yes"])["rewards"] == [1.0]
        assert httpx.get(f"{server.base_url}/metrics", timeout=10).status_code == 401
        assert httpx.get(f"{server.base_url}/metrics", headers=server.headers(), timeout=10).status_code == 200
        # without the token /health says it is up and nothing else (no recipes, no judge URL)
        assert httpx.get(f"{server.base_url}/health", timeout=10).json() == {"status": "ok"}
        health = httpx.get(f"{server.base_url}/health", headers=server.headers(), timeout=10).json()
        assert health["metrics"]["meteor"]["wordnet"] is False  # disabled: METEOR says so, and still works
        assert health["metrics"]["meteor"]["matching"] == "exact+stem (no WordNet)"
        hyp, ref = "the large dogs were running", "the big dog runs"
        got = server.score([hyp], [{"solution": ref, "task": "generative"}])["rewards"][0]
        expected = meteor_score([ref.split()], hyp.split(), wordnet=NoWordNet(), stemmer=PorterStemmer())
        assert got == pytest.approx(expected, abs=1e-9) and got > 0
    finally:
        stop_server(server, log)
