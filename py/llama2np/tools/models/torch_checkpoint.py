"""llama2.c `train.py` checkpoints ({'model': state_dict, 'model_args': {...}, ...}) as the
runtime's `Checkpoint`, read through the restricted unpickler.

What the pickle gave is checked like any other input: the saved object and the state dict must
be dictionaries, model_args whole numbers in the range of llama2.c's int32 header, and every
tensor a floating-point array of exactly the shape the config gives, before anything is stacked.
"""

import numpy as np

from llama2np.runtime.checkpoint import Checkpoint, Config, Weights, weight_shapes
from llama2np.runtime.errors import CheckpointError
from llama2np.tools.models.pickle_reader import load_pt

COMPILED_PREFIX = "_orig_mod."  # torch.compile's wrapper prefixes every key with this
LAYER_KEYS = {
    "rms_att": "attention_norm.weight",
    "wq": "attention.wq.weight",
    "wk": "attention.wk.weight",
    "wv": "attention.wv.weight",
    "wo": "attention.wo.weight",
    "rms_ffn": "ffn_norm.weight",
    "w1": "feed_forward.w1.weight",
    "w2": "feed_forward.w2.weight",
    "w3": "feed_forward.w3.weight",
}
OTHER_KEYS = {"token_embedding": "tok_embeddings.weight", "rms_final": "norm.weight",
              "wcls": "output.weight"}
INT32_MAX = 2**31 - 1  # llama2.c's header stores each config value as an int32


def checkpoint_from_pt(data: bytes, name: str) -> Checkpoint:
    """The model in the bytes of a train.py .pt file (read without running its pickle code)."""
    return checkpoint_from_saved(load_pt(data, name), name)


def checkpoint_from_saved(saved: object, name: str) -> Checkpoint:
    """The model in train.py's saved dictionary, its tensors already NumPy arrays."""
    if not (isinstance(saved, dict) and isinstance(saved.get("model"), dict)
            and isinstance(saved.get("model_args"), dict)):
        raise CheckpointError(f"{name} is not a llama2.c train.py checkpoint (no 'model' state "
                              "dictionary and 'model_args' dictionary).")
    state = {key.removeprefix(COMPILED_PREFIX): value for key, value in saved["model"].items()
             if isinstance(key, str)}
    config = config_from(saved["model_args"], state, name)
    shapes = weight_shapes(config)
    fields = {field: tensor(state, key, shapes[field], name) for field, key in OTHER_KEYS.items()}
    for field, key in LAYER_KEYS.items():
        layer_shape = shapes[field][1:]
        fields[field] = np.stack([tensor(state, f"layers.{i}.{key}", layer_shape, name)
                                  for i in range(config.n_layers)])
    # train.py ties the classifier to the embedding; the saved state then holds one matrix twice.
    shared = bool(np.array_equal(fields["wcls"], fields["token_embedding"]))
    return Checkpoint(config, Weights(**fields), 1, shared)


def tensor(state: dict, key: str, shape: tuple[int, ...], name: str) -> np.ndarray:
    """The float32 tensor `key`, refused unless it is a floating-point array of `shape`."""
    value = state.get(key)
    if not isinstance(value, np.ndarray):
        raise CheckpointError(f"{name} has no tensor {key}; it is not a llama2.c model.")
    if value.dtype.kind != "f":
        raise CheckpointError(f"{name}: tensor {key} holds {value.dtype} values, not floating "
                              "point numbers; it is not a llama2.c model's weight.")
    if value.shape != shape:
        raise CheckpointError(f"{name}: tensor {key} has shape {value.shape}, but model_args "
                              f"give {shape}.")
    return value.astype(np.float32, copy=False)


def config_value(args: dict, key: str, name: str, default: int | None = None) -> int:
    """model_args[key] as a whole number from 1 to INT32_MAX; `default` when absent or None."""
    value = args.get(key)
    if value is None and default is not None:
        return default
    if type(value) is not int or not 1 <= value <= INT32_MAX:
        shown = repr(value)[:40] if isinstance(value, (int, float, str, type(None))) else \
            f"a {type(value).__name__}"
        raise CheckpointError(f"{name}'s model_args give {key} = {shown}; it must be a whole "
                              f"number from 1 to {INT32_MAX:,}.")
    return value


def config_from(args: dict, state: dict, name: str) -> Config:
    n_heads = config_value(args, "n_heads", name)
    w1 = state.get("layers.0.feed_forward.w1.weight")
    hidden = w1.shape[0] if isinstance(w1, np.ndarray) and w1.ndim == 2 else None
    config = Config(
        dim=config_value(args, "dim", name),
        hidden_dim=config_value(args, "hidden_dim", name, hidden),
        n_layers=config_value(args, "n_layers", name),
        n_heads=n_heads,
        n_kv_heads=config_value(args, "n_kv_heads", name, n_heads),
        vocab_size=config_value(args, "vocab_size", name),
        seq_len=config_value(args, "max_seq_len", name),
    )
    if config.problems():
        raise CheckpointError(f"{name}'s model_args are inconsistent: {'; '.join(config.problems())}.")
    return config
