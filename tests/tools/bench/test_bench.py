"""`llama2np bench` on CPython: the table of speeds beside the straightforward port."""

from support import run_cli


def test_bench_prints_speeds_beside_the_port(model_dir):
    result = run_cli("bench", model_dir / "stories260K.bin", "-n", "24", "--prompt-tokens", "8",
                     "--repeat", "1")
    assert result.returncode == 0, result.stderr
    for engine in ("llama2np, plain", "llama2np, float32", "straightforward port"):
        assert f"| {engine} |" in result.stdout
    assert "decode tok/s" in result.stdout and "x port" in result.stdout


def test_shapes_sweep_prints_speed_memory_and_load_per_shape(monkeypatch):
    """The sweep's path for a synthetic shape (a small one here; `--shapes all` measures
    stories15M's, 42M's and 110M's): speeds beside the port, load time, measured peak memory."""
    from llama2np.runtime.checkpoint import Config
    from llama2np.tools.bench import sweep

    tiny = Config(dim=64, hidden_dim=128, n_layers=1, n_heads=2, n_kv_heads=1, vocab_size=32000,
                  seq_len=32)
    monkeypatch.setitem(sweep.SHAPES, "tiny", tiny)
    table = sweep.sweep(["tiny"], steps=8, prompt_tokens=4, repeats=1)
    row = next(line for line in table.splitlines() if line.startswith("| tiny |"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[3] == "Float32Transformer"
    peak, goal = float(cells[5].replace(",", "")), float(cells[6].replace(",", ""))
    assert 20 < peak <= goal
    assert all(float(cell.replace(",", "")) > 0 for cell in cells[7:])


def test_shapes_are_checked_before_anything_runs(model_dir):
    from hostile import assert_refused, run_bounded

    assert_refused(run_bounded("bench", "--shapes", "7B"), 2, "--shapes", "260K, 15M, 42M, 110M")
    assert_refused(run_bounded("bench", "--shapes", "15M", "--browser"), 2, "--site")


def test_links_without_browser_is_a_usage_error():
    result = run_cli("bench", "--links", "localhost")
    assert result.returncode == 2 and "--links is for bench --browser" in result.stderr


def test_nginx_is_never_pointed_at_a_folder_whose_name_its_config_would_read(tmp_path):
    import pytest
    from llama2np.runtime.errors import Llama2npError
    from llama2np.tools.bench.hosts import nginx_available, serving

    if not nginx_available():
        pytest.skip("nginx is not installed")
    folder = tmp_path / 'site";listen 127.0.0.1:1;x "'
    folder.mkdir()
    with pytest.raises(Llama2npError, match="cannot be pointed at"):
        with serving(folder, "nginx"):
            pass
