"""The generation loop: budgets and limits hold, a continued story is a longer one."""

import pytest
from llama2np.runtime.errors import Llama2npError, PromptError, UsageError
from llama2np.runtime.generate import Story, generate_tokens
from llama2np.runtime.model import FusedTransformer, make_model
from llama2np.runtime.sampler import Sampler


def test_advance_respects_its_token_budget(model, tokenizer):
    story = Story(model, tokenizer, "Once upon a time", temperature=0.0, steps=100)
    first = story.advance(max_tokens=3)
    assert len(story.tokens) == 3 and first
    story.advance(max_seconds=0.0)  # at least one token, then the time is up
    assert len(story.tokens) == 4
    rest = story.text()
    assert story.done and story.advance() == ""
    assert len(story.prompt_tokens) - 1 + len(story.tokens) == 100 - 1 + 1
    stats = story.stats()
    assert stats["generated_tokens"] == len(story.tokens)
    assert stats["prompt_tokens"] == len(story.prompt_tokens) - 1
    assert stats["tokens_per_second"] > 0 and stats["first_token_seconds"] > 0
    assert rest


def test_story_text_is_the_prompt_then_the_continuation(model, tokenizer, checkpoint):
    story = Story(model, tokenizer, "The cat", temperature=0.0, steps=30)
    assert story.prompt_text == "The cat"
    whole = tokenizer.decode(story.prompt_tokens + [*generate_tokens(
        make_model(checkpoint), story.prompt_tokens,
        Sampler(512, 0.0, 0.9, 1), 30)])
    assert story.prompt_text + story.text() == whole


def test_generation_stops_at_bos(checkpoint):
    class BosAtTen(FusedTransformer):
        """The real model, except that from position 10 on BOS is the likeliest token."""

        def forward(self, tokens, pos):
            logits = super().forward(tokens, pos)
            for row in range(len(tokens)):
                if pos + row >= 10:
                    logits[row, 1] = logits[row].max() + 10
            return logits

    tokens = list(generate_tokens(BosAtTen(checkpoint), [1], Sampler(512, 0.0, 0.9, 1), 256))
    assert len(tokens) == 10 and 1 not in tokens


def test_zero_seed_means_the_clock(model, tokenizer):
    assert Story(model, tokenizer, "", seed=0).seed > 1_600_000_000


@pytest.mark.parametrize(("options", "error", "phrase"), [
    (dict(prompt="word " * 600), PromptError, "context is 512 tokens"),
    (dict(prompt="a b c d e f g", steps=4), PromptError, "fills all 4 steps"),
    (dict(temperature=-1), UsageError, "temperature -1"),
    (dict(topp=2), UsageError, "top-p 2"),
    (dict(steps=-5), UsageError, "steps -5"),
    (dict(seed=-9), UsageError, "seed -9"),
])
def test_bad_requests(model, tokenizer, options, error, phrase):
    with pytest.raises(error, match=phrase):
        Story(model, tokenizer, **options)


def test_steps_are_clamped_to_the_context(model, tokenizer):
    assert Story(model, tokenizer, "", steps=0).steps == 512
    assert Story(model, tokenizer, "", steps=10_000).steps == 512


def test_nan_logits_end_the_story_with_a_sentence_naming_the_position(checkpoint):
    class NanAtSeven(FusedTransformer):
        def forward(self, tokens, pos):
            logits = super().forward(tokens, pos)
            logits[max(0, 7 - pos) :, 3] = float("nan")  # rows at position 7 and after
            return logits

    story = generate_tokens(NanAtSeven(checkpoint), [1], Sampler(512, 1.0, 0.9, 1), 256)
    with pytest.raises(Llama2npError, match="produced NaN at position 7; run llama2np validate"):
        list(story)


def whole_story(model, tokenizer, prompt: str, **options) -> tuple[str, Story]:
    story = Story(model, tokenizer, prompt, **options)
    return story.text(), story


@pytest.mark.parametrize(("temperature", "topp", "seed"), [(0.0, 0.9, 1), (1.0, 0.9, 12), (0.8, 0.0, 7)])
def test_continuing_a_story_cut_by_its_length_writes_what_a_longer_length_would(
        checkpoint, tokenizer, temperature, topp, seed):
    options = dict(temperature=temperature, topp=topp, seed=seed)
    longer, _ = whole_story(make_model(checkpoint), tokenizer, "Tom found a 🐸", steps=0, **options)
    text, story = whole_story(make_model(checkpoint), tokenizer, "Tom found a 🐸", steps=40,
                              **options)
    assert story.ended == "length" and story.can_continue and story.positions() == 40
    for steps in (90, 0):  # twice: a second Continue goes on again, to the whole context
        taken_back = story.extend(steps)
        text = text[:len(text) - taken_back] + story.text()
    assert text == longer
    assert story.ended in ("end", "length") and not story.can_continue


def test_a_story_the_model_ended_cannot_be_continued(checkpoint, tokenizer):
    text, story = whole_story(make_model(checkpoint), tokenizer, "", temperature=0, steps=512)
    assert story.ended == "end" and story.positions() < 512 and not story.can_continue
    with pytest.raises(UsageError, match="the model ended this story, so it cannot go on"):
        story.extend(0)


def test_explaining_changes_no_token_and_gives_each_token_s_probability(model, tokenizer,
                                                                         checkpoint):
    plain, story = whole_story(model, tokenizer, "Lily", temperature=1.0, topp=0.9, seed=5,
                               steps=80)
    explained, told = whole_story(make_model(checkpoint), tokenizer, "Lily", temperature=1.0,
                                  topp=0.9, seed=5, steps=80, explain=True)
    assert explained == plain and told.tokens == story.tokens and story.explanations is None
    assert [e["token"] for e in told.explanations] == told.tokens
    assert "".join(e["text"] for e in told.explanations) == plain
    for e in told.explanations:
        ps = [alt["p"] for alt in e["top"]]
        assert len(ps) == 5 and ps == sorted(ps, reverse=True) and 0 < e["p"] <= ps[0] <= 1
        assert e["p"] == next((alt["p"] for alt in e["top"] if alt["token"] == e["token"]), e["p"])


def test_a_plain_story_samples_with_the_plain_sampler(model, tokenizer):
    # The explaining sampler's extra softmax and sort run only when asked for: the plain path
    # keeps its NumPy calls.
    assert type(Story(model, tokenizer, "")._sampler) is Sampler
    assert type(Story(model, tokenizer, "", explain=True)._sampler) is not Sampler


def test_a_prompt_forwarded_in_batches_writes_the_same_story(checkpoint, tokenizer, monkeypatch):
    """A long prompt goes through the model a batch at a time (memory in proportion to its
    length); the story is the one a single batch writes."""
    import llama2np.runtime.generate as generation

    prompt = tokenizer.encode("Once upon a time, there was a little girl named Lily. " * 8)
    def story() -> list[int]:
        sampler = Sampler(checkpoint.config.vocab_size, 1.0, 0.9, 42)
        return list(generate_tokens(make_model(checkpoint), prompt, sampler, 300))

    whole = story()
    monkeypatch.setattr(generation, "PREFILL_MAX_BATCH", 7)
    assert len(prompt) > 7 * 10 and story() == whole
