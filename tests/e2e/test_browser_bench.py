"""`llama2np bench --browser`: the same table measured in Chromium's Pyodide, with load figures."""

import pytest
from support import run_cli

pytestmark = pytest.mark.e2e


def test_browser_benchmark_prints_its_table(built_site):
    result = run_cli("bench", "--browser", "--site", built_site, "-n", "24", "--prompt-tokens", "8",
                     "--repeat", "1", "--links", "localhost")
    assert result.returncode == 0, result.stderr
    for line in ("| llama2np, plain |", "| straightforward port |", "cold load to ready",
                 "repeat visit to ready", "first visit's first story", "bytes on the wire, cold visit",
                 "| llama2np serve | localhost |", "| http.server | localhost |", "| nginx | localhost |"):
        assert line in result.stdout
