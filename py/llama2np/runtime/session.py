"""What the browser worker calls: one loaded model, one story at a time, plain values back.

The worker (web/worker.js) only moves bytes and messages; all it asks of the model goes through
this class (and sizing a visitor's own files through `own_files`), so the page runs the same
code the command line and the tests run. Errors
of the product come back as `{"error": sentence}` rather than exceptions, so JavaScript shows
the sentence and never a Python traceback.
"""

from llama2np.runtime.benchmark import ENGINES, measure
from llama2np.runtime.checkpoint import parameter_count, read_checkpoint
from llama2np.runtime.errors import Llama2npError, PromptTooLong
from llama2np.runtime.generate import Story
from llama2np.runtime.model import make_model
from llama2np.runtime.tokenizer import Tokenizer


class Session:
    def __init__(self, checkpoint: bytes | memoryview, tokenizer: bytes | memoryview,
                 name: str = "model", tokenizer_name: str = "tokenizer") -> None:
        """Raises Llama2npError (with a sentence naming the file) for a broken model."""
        self.name = name
        self.checkpoint = read_checkpoint(checkpoint, name)
        self.model = make_model(self.checkpoint)
        self.tokenizer = Tokenizer.from_bytes(tokenizer, self.checkpoint.config.vocab_size,
                                              tokenizer_name)
        self.story: Story | None = None

    def info(self) -> dict:
        c = self.checkpoint.config
        return {"name": self.name, "version": self.checkpoint.version,
                "parameters": parameter_count(self.checkpoint),
                "config": {k: getattr(c, k) for k in ("dim", "hidden_dim", "n_layers", "n_heads",
                                                      "n_kv_heads", "vocab_size", "seq_len")}}

    def start(self, *, prompt: str, temperature: float, topp: float, seed: int, steps: int,
              explain: bool = False) -> dict:
        """Begin a story: {"prompt_text": the prompt as run.c echoes it, "seed": the seed used
        (the clock's for 0), "steps": the length used (the context's for 0)} or {"error": ...}.
        With `explain`, `explanations()` hands out each token's probabilities."""
        try:  # a story that cannot begin leaves the last one as it was (Why this word explains it)
            story = Story(self.model, self.tokenizer, prompt, temperature=float(temperature),
                          topp=float(topp), seed=int(seed), steps=int(steps), explain=bool(explain))
        except PromptTooLong as error:
            return {"error": prompt_too_long(error)}
        except Llama2npError as error:
            return {"error": sentence(str(error))}
        self.story = story
        return {"prompt_text": self.story.prompt_text, "seed": self.story.seed,
                "steps": self.story.steps}

    def extend(self, steps: int = 0) -> dict:
        """Continue the last story up to `steps` positions (0 = the context), exactly as that
        length would have written it: {"steps", "taken_back": characters of the shown text to
        remove first} or {"error": ...}. The model's cache holds this story's positions only
        while no other story ran, which the worker guarantees: only `start` uses the model."""
        if self.story is None:
            return {"error": "There is no story to continue; write one first."}
        try:
            taken_back = self.story.extend(int(steps))
        except Llama2npError as error:
            return {"error": sentence(str(error))}
        return {"steps": self.story.steps, "taken_back": taken_back}

    def explanations(self) -> list[dict]:
        """The probabilities of the tokens written since the last call (see Story)."""
        return self.story.new_explanations() if self.story else []

    def explain_story(self) -> dict:
        """{"tokens": every token of the last story with its probabilities, as `explain` would
        have given them} or {"error": ...}: for a story written without them. The pass runs on
        a model of its own (float32, whose arrays are the checkpoint's), so that the story can
        still be continued."""
        if self.story is None or not self.story.tokens:
            return {"error": "There is no story to explain; write one first."}
        return {"tokens": self.story.explain_written(make_model(self.checkpoint, 32))}

    def ending(self) -> dict:
        """How the story ended so far: {"ended": "end" | "length" | None, "can_continue"}."""
        if self.story is None:
            return {"ended": None, "can_continue": False}
        return {"ended": self.story.ended, "can_continue": self.story.can_continue}

    def advance(self, max_seconds: float) -> str:
        """More of the story, after about `max_seconds` of work or at its end."""
        return self.story.advance(max_seconds=max_seconds) if self.story else ""

    @property
    def done(self) -> bool:
        return self.story is None or self.story.done

    def stats(self) -> dict:
        return self.story.stats() if self.story else {}

    def bench(self, steps: int = 256, prompt_tokens: int = 100, repeats: int = 3,
              engines: list[str] | None = None) -> dict:
        """`llama2np.runtime.benchmark.measure` on this model, for `llama2np bench --browser`."""
        return measure(self.checkpoint, int(steps), int(prompt_tokens), int(repeats),
                       tuple(engines) if engines else tuple(ENGINES))


def prompt_too_long(error: PromptTooLong) -> str:
    """The prompt error in the page's own words: its field is "Start of the story" and its
    length "Length", which counts the start's tokens too."""
    n = error.prompt_tokens
    if error.too_long_for_context:
        return (f"The start of the story is {n} tokens long, but the model's context is "
                f"{error.context} tokens; shorten it.")
    return (f"The start of the story is {n} tokens long, which fills the whole Length of "
            f"{error.steps} (Length counts its tokens too); raise Length (0 is the whole "
            "context) or shorten the start.")


def sentence(text: str) -> str:
    """The runtime's messages start in lower case after "llama2np: "; the page shows them alone."""
    return text[:1].upper() + text[1:]
