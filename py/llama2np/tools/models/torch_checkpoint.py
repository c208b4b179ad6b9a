"""llama2.c `train.py` checkpoints ({'model': state_dict, 'model_args': {...}, ...}) as the
runtime's `Checkpoint`, read through the restricted unpickler."""

import numpy as np

from llama2np.checkpoint import Checkpoint, Config, Weights, weight_shapes
from llama2np.errors import CheckpointError
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


def checkpoint_from_pt(data: bytes, name: str) -> Checkpoint:
    """The model in the bytes of a train.py .pt file (read without running its pickle code)."""
    return checkpoint_from_saved(load_pt(data, name), name)


def checkpoint_from_saved(saved: object, name: str) -> Checkpoint:
    """The model in train.py's saved dictionary, its tensors already NumPy arrays."""
    if not isinstance(saved, dict) or "model" not in saved or "model_args" not in saved:
        raise CheckpointError(f"{name} is not a llama2.c train.py checkpoint (no 'model' and "
                              "'model_args' entries).")
    state = {key.removeprefix(COMPILED_PREFIX): value for key, value in saved["model"].items()}
    config = config_from(saved["model_args"], state, name)
    weights = Weights(
        token_embedding=tensor(state, "tok_embeddings.weight", name),
        rms_final=tensor(state, "norm.weight", name),
        wcls=tensor(state, "output.weight", name),
        **{field: np.stack([tensor(state, f"layers.{i}.{key}", name) for i in range(config.n_layers)])
           for field, key in LAYER_KEYS.items()},
    )
    for field, shape in weight_shapes(config).items():
        if getattr(weights, field).shape != shape:
            raise CheckpointError(f"{name}: {field} has shape {getattr(weights, field).shape}, "
                                  f"but model_args give {shape}.")
    # train.py ties the classifier to the embedding; the saved state then holds one matrix twice.
    shared = bool(np.array_equal(weights.wcls, weights.token_embedding))
    return Checkpoint(config, weights, 1, shared)


def tensor(state: dict, key: str, name: str) -> np.ndarray:
    value = state.get(key)
    if not isinstance(value, np.ndarray):
        raise CheckpointError(f"{name} has no tensor {key}; it is not a llama2.c model.")
    return value.astype(np.float32)


def config_from(args: object, state: dict, name: str) -> Config:
    if not isinstance(args, dict):
        raise CheckpointError(f"{name}'s model_args is not a dictionary.")
    try:
        n_heads = int(args["n_heads"])
        w1 = tensor(state, "layers.0.feed_forward.w1.weight", name)
        config = Config(
            dim=int(args["dim"]),
            hidden_dim=int(args.get("hidden_dim") or w1.shape[0]),
            n_layers=int(args["n_layers"]),
            n_heads=n_heads,
            n_kv_heads=int(args.get("n_kv_heads") or n_heads),
            vocab_size=int(args["vocab_size"]),
            seq_len=int(args["max_seq_len"]),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{name}'s model_args lack a usable {error}.") from None
    if config.problems():
        raise CheckpointError(f"{name}'s model_args are inconsistent: {'; '.join(config.problems())}.")
    return config
