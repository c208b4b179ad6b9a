"""run.c's published stories, byte for byte, through the command and through the Python API."""

import pytest
from llama2np.runtime.baseline import BaselineTransformer
from llama2np.runtime.generate import Story
from support import GOLDEN_T0, GOLDEN_T1, run_cli

CASES = [
    (GOLDEN_T0, ["-t", "0.0"], dict(temperature=0.0)),
    (GOLDEN_T1, ["-t", "1.0", "-p", "0.9", "-s", "133742"], dict(temperature=1.0, topp=0.9, seed=133742)),
]


@pytest.mark.parametrize(("golden_name", "flags", "_"), CASES, ids=["t0", "t1-p0.9-s133742"])
def test_command_reproduces_run_c(model_dir, golden, golden_name, flags, _):
    result = run_cli("generate", model_dir / "stories260K.bin", "-z", model_dir / "tok512.bin",
                     *flags)
    assert result.returncode == 0, result.stderr
    assert result.stdout == golden(golden_name) + "\n"  # run.c ends with a newline
    assert "achieved tok/s" in result.stderr


@pytest.mark.parametrize(("golden_name", "_", "options"), CASES, ids=["t0", "t1-p0.9-s133742"])
def test_api_reproduces_run_c(model, tokenizer, golden, golden_name, _, options):
    story = Story(model, tokenizer, "", steps=256, **options)
    assert story.prompt_text == ""
    assert story.text() == golden(golden_name)
    assert story.done


@pytest.mark.parametrize(("golden_name", "_", "options"), CASES, ids=["t0", "t1-p0.9-s133742"])
def test_straightforward_port_reproduces_run_c(checkpoint, tokenizer, golden, golden_name, _, options):
    # The benchmarks' yardstick must compute what run.c computes, or its speed means nothing.
    story = Story(BaselineTransformer(checkpoint), tokenizer, "", steps=256, **options)
    assert story.text() == golden(golden_name)
