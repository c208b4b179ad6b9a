"""`llama2np bench` on CPython: the table of speeds beside the straightforward port."""

from support import run_cli


def test_bench_prints_speeds_beside_the_port(model_dir):
    result = run_cli("bench", model_dir / "stories260K.bin", "-n", "24", "--prompt-tokens", "8",
                     "--repeat", "1")
    assert result.returncode == 0, result.stderr
    for engine in ("llama2np, speculative", "llama2np, plain", "straightforward port"):
        assert f"| {engine} |" in result.stdout
    assert "decode tok/s" in result.stdout and "x port" in result.stdout
