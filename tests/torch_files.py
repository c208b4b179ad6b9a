"""train.py checkpoints written by hand, as torch.save lays them out, without PyTorch: a zip of
a pickle (protocol 2) whose tensors point at raw little-endian storages."""

import io
import pickle
import struct
import zipfile

import numpy as np
from llama2np.runtime.checkpoint import Checkpoint

# train.py's state-dict names of the per-layer weights, by the runtime's field names.
LAYER_FIELDS = {"wq": "attention.wq.weight", "wk": "attention.wk.weight", "wv": "attention.wv.weight",
                "wo": "attention.wo.weight", "w1": "feed_forward.w1.weight",
                "w2": "feed_forward.w2.weight", "w3": "feed_forward.w3.weight",
                "rms_att": "attention_norm.weight", "rms_ffn": "ffn_norm.weight"}


def text(value: str) -> bytes:
    data = value.encode()
    return pickle.BINUNICODE + struct.pack("<I", len(data)) + data


def integer(value: int) -> bytes:
    if -(2**31) <= value < 2**31:
        return pickle.BININT + struct.pack("<i", value)
    data = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
    return pickle.LONG4 + struct.pack("<i", len(data)) + data


def name(module: str, attribute: str) -> bytes:
    return pickle.GLOBAL + f"{module}\n{attribute}\n".encode()


def tuple_of(*items: bytes) -> bytes:
    return pickle.MARK + b"".join(items) + pickle.TUPLE


def call(function: bytes, *args: bytes) -> bytes:
    return function + tuple_of(*args) + pickle.REDUCE


def mapping(pairs: list[tuple[str, bytes]]) -> bytes:
    return pickle.EMPTY_DICT + pickle.MARK + b"".join(text(k) + v for k, v in pairs) + pickle.SETITEMS


def tensor(key: str, elements: int, offset: int, size: tuple, stride: tuple,
           kind: str = "FloatStorage") -> bytes:
    """torch._utils._rebuild_tensor_v2 over storage `key`, as torch.save writes it."""
    storage = tuple_of(text("storage"), name("torch", kind), text(key), text("cpu"),
                       integer(elements)) + pickle.BINPERSID
    return call(name("torch._utils", "_rebuild_tensor_v2"), storage, integer(offset),
                tuple_of(*map(integer, size)), tuple_of(*map(integer, stride)), pickle.NEWFALSE,
                call(name("collections", "OrderedDict")))


def torch_zip(pickled: bytes, storages: dict[str, bytes] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("archive/data.pkl", pickled)
        for key, data in (storages or {}).items():
            archive.writestr(f"archive/data/{key}", data)
        archive.writestr("archive/version", "3\n")
    return buffer.getvalue()


def train_pt(checkpoint: Checkpoint) -> bytes:
    """`checkpoint` as train.py saves it: {'model': state dict, 'model_args': ...}, the classifier
    one storage with the embedding when they are shared, as train.py ties them."""
    w, c = checkpoint.weights, checkpoint.config
    arrays = {"tok_embeddings.weight": w.token_embedding, "norm.weight": w.rms_final}
    for field, key in LAYER_FIELDS.items():
        for layer in range(c.n_layers):
            arrays[f"layers.{layer}.{key}"] = getattr(w, field)[layer]
    if not checkpoint.shared_classifier:
        arrays["output.weight"] = w.wcls
    storages, entries = {}, []
    for index, (key, array) in enumerate(arrays.items()):
        storages[str(index)] = np.ascontiguousarray(array, dtype="<f4").tobytes()
        strides = tuple(s // 4 for s in np.ascontiguousarray(array, dtype="<f4").strides)
        entries.append((key, tensor(str(index), array.size, 0, array.shape, strides)))
    if checkpoint.shared_classifier:
        shape = w.token_embedding.shape
        entries.append(("output.weight", tensor("0", w.token_embedding.size, 0, shape, (shape[1], 1))))
    args = dict(dim=c.dim, hidden_dim=c.hidden_dim, n_layers=c.n_layers, n_heads=c.n_heads,
                n_kv_heads=c.n_kv_heads, vocab_size=c.vocab_size, max_seq_len=c.seq_len)
    pickled = (pickle.PROTO + b"\x02"
               + mapping([("model", mapping(entries)),
                          ("model_args", mapping([(k, integer(v)) for k, v in args.items()]))])
               + pickle.STOP)
    return torch_zip(pickled, storages)
