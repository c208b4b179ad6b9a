"""The sampler against run.c's definitions compiled as C (tests/c/sampler_reference.c)."""

import subprocess
from pathlib import Path

import numpy as np
import pytest
from llama2np.runtime.errors import UsageError
from llama2np.runtime.sampler import NonFiniteLogits, Rng, Sampler, sample_multinomial, sample_topp
from support import compile_c

SOURCE = Path(__file__).parent / "c" / "sampler_reference.c"


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    binary = compile_c(SOURCE, tmp_path_factory.mktemp("c"))

    def run(*args, stdin=""):
        out = subprocess.run([str(binary), *map(str, args)], input=stdin, capture_output=True,
                             text=True, check=True)
        return out.stdout.split()

    return run


@pytest.mark.parametrize("seed", [1, 42, 133742, 2**32 + 7, 2**63 + 12345])
def test_rng_matches_run_c(reference, seed):
    expected = reference("rng", seed, 20)
    rng = Rng(seed)
    assert [str(rng.u32()) for _ in range(20)] == expected[:20]
    rng = Rng(seed)
    assert [np.float32(rng.f32()) for _ in range(20)] == [np.float32(v) for v in expected[20:]]


def make_logits(seed: int, n: int = 512, spread: float = 3.0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(n) * spread).astype(np.float32)


@pytest.mark.parametrize(("temperature", "topp"), [
    (0.0, 0.9), (1.0, 0.9), (0.7, 0.95), (1.3, 0.5), (1.0, 0.0), (0.5, 1.0), (2.0, 0.99),
])
@pytest.mark.parametrize("case", range(6))
def test_choices_match_run_c(reference, temperature, topp, case):
    logits = make_logits(case, spread=[1.0, 3.0, 8.0][case % 3])
    seed = 1000 + case
    expected = reference("sample", temperature, topp, seed, 200,
                         stdin=" ".join(f"{v:.9g}" for v in logits))
    sampler = Sampler(len(logits), temperature, topp, seed)
    assert [str(sampler.sample(logits)) for _ in range(200)] == expected


def test_ties_keep_index_order():
    # run.c's merge-sort-based qsort keeps equal probabilities in index order
    probabilities = np.array([0.25, 0.25, 0.25, 0.25], np.float32)
    assert sample_topp(probabilities, np.float32(0.6), np.float32(0.0)) == 0
    assert sample_topp(probabilities, np.float32(0.6), np.float32(0.99)) == 2
    assert sample_multinomial(probabilities, np.float32(0.5)) == 2


def test_multinomial_falls_back_to_last_index():
    assert sample_multinomial(np.array([0.1, 0.1], np.float32), np.float32(0.99)) == 1


@pytest.mark.parametrize(("temperature", "topp", "phrase"), [
    (-0.1, 0.9, "temperature -0.1"), (float("inf"), 0.9, "temperature inf"),
    (1.0, 1.01, "top-p 1.01"), (1.0, float("nan"), "top-p nan"),
])
def test_out_of_range_settings(temperature, topp, phrase):
    with pytest.raises(UsageError, match=phrase):
        Sampler(512, temperature, topp, 1)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize(("temperature", "topp"), [(0.0, 0.9), (1.0, 0.9), (1.0, 1.0)])
def test_non_finite_logits_are_reported_not_sampled(value, temperature, topp):
    logits = make_logits(3)
    logits[17] = value
    if value == -np.inf:
        logits[:] = value  # one -inf is a token never chosen; all of them is no choice at all
    with pytest.raises(NonFiniteLogits, match="NaN" if np.isnan(value) else "infinite"):
        Sampler(len(logits), temperature, topp, 1).sample(logits)


def test_a_temperature_that_would_overflow_float32_is_greedy_and_draws_run_c_s_coin():
    logits = make_logits(4, spread=8.0)
    bound = float(np.abs(logits).max())
    tiny = Sampler(len(logits), 1e-40, 0.9, 5, logit_bound=bound)
    usual = Sampler(len(logits), 1.0, 0.9, 5, logit_bound=bound)
    assert tiny.greedy and not usual.greedy
    assert [tiny.sample(logits) for _ in range(3)] == [int(logits.argmax())] * 3
    for _ in range(3):
        usual.sample(logits)
    assert tiny.rng.state == usual.rng.state  # one draw a token, as run.c makes


def test_a_small_temperature_that_stays_finite_is_sampled_as_run_c_does():
    """1e-30 keeps logits / temperature within float32, so nothing changes for it: a softmax that
    sharp puts all the mass on the largest logit."""
    logits = make_logits(5)
    sampler = Sampler(len(logits), 1e-30, 0.9, 5, logit_bound=float(np.abs(logits).max()))
    assert not sampler.greedy
    assert sampler.sample(logits) == int(logits.argmax())
