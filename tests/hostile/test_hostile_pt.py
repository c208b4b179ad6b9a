"""Hostile .pt files, each made here from pickle opcodes and a zip laid out as torch.save lays
it out, given to `llama2np validate` and `llama2np export` in a bounded subprocess: each ends
in exit 1 with one sentence, within a memory bound, with nothing written and every file in the
folder as it was.

The memory bound: the reader costs a few times the file's size plus fixed budgets (see
pickle_reader.py); every hostile file here is under 2 MB, and the bound below is a Python with
NumPy (about 36 MB) plus a margin; a sound .pt of N MB costs validate about 36 + 3N MB. Before
these checks, the same files took from 4 GB (a stride-0 view) to 9.5 GB (a megabyte of
MARKs), or crashed with SIGSEGV.

Peak memory is the command's own, as `hostile.run_bounded` measures it.
"""

import io
import math
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hostile import assert_refused, folder_state, run_bounded
from llama2np.runtime.errors import CheckpointError
from llama2np.tools.models.pickle_reader import load_pt
from support import FIXTURES
from torch_files import call, integer, mapping, name, tensor, text, torch_zip, tuple_of

pytestmark = pytest.mark.hostile

PEAK_RSS_MB = 100  # measured: 36-58 MB for every hostile case below

def run_measured(*args: object, memory_mb: int = 768):
    """run_bounded's outcome for `llama2np ARGS`, with the command's own peak RSS in MB."""
    outcome = run_bounded(*args, memory_mb=memory_mb)
    return outcome, outcome.peak_rss_mb


ARGS = dict(dim=16, hidden_dim=48, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=32, max_seq_len=32)


def saved(model: bytes, **args: bytes) -> bytes:
    """train.py's {'model': ..., 'model_args': ...}; model_args are the fixture's unless given."""
    values = {key: integer(value) for key, value in ARGS.items()} | args
    return (pickle.PROTO + b"\x02" + mapping([("model", model),
                                              ("model_args", mapping(list(values.items())))])
            + pickle.STOP)


FLOAT = struct.pack("<f", 1.0)
MB = 1 << 20


# -- the files ------------------------------------------------------------------------------------


def deep_tuple_key() -> bytes:
    """A dict keyed by a 300,000-deep nested tuple: hashing it overflowed the C stack."""
    key = pickle.NONE + pickle.TUPLE1 * 300_000
    return torch_zip(pickle.PROTO + b"\x02" + pickle.EMPTY_DICT + key + pickle.NONE
                     + pickle.SETITEM + pickle.STOP)


def deep_lists() -> bytes:
    """Lists nested 300,000 deep, each appended into the one before."""
    return torch_zip(pickle.PROTO + b"\x02" + pickle.EMPTY_LIST * 300_000
                     + pickle.APPEND * 299_999 + pickle.STOP)


def zip_bomb() -> bytes:
    """256 MiB of zeros deflated to about a megabyte, as a storage."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr("archive/data.pkl", saved(tensor("0", 64 * MB, 0, (64 * MB,), (1,))))
        with archive.open("archive/data/0", "w") as entry:
            for _ in range(16):
                entry.write(bytes(16 * MB))
    return buffer.getvalue()


def with_flag_bits(data: bytes, bits: int) -> bytes:
    """Every entry marked with `bits` in both its local and its central header."""
    data = bytearray(data)
    for signature, flag_offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = data.find(signature)
        while start >= 0:
            struct.pack_into("<H", data, start + flag_offset,
                             struct.unpack_from("<H", data, start + flag_offset)[0] | bits)
            start = data.find(signature, start + 4)
    return bytes(data)


def bzip2_entries() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_BZIP2) as archive:
        archive.writestr("archive/data.pkl", saved(pickle.EMPTY_DICT))
    return buffer.getvalue()


def many_views() -> bytes:
    """One 1 MB storage viewed by 1,000 tensors: a gigabyte if each view were copied."""
    views = [(f"t{i}", tensor("0", MB // 4, 0, (MB // 4,), (1,))) for i in range(1000)]
    return torch_zip(saved(mapping(views)), {"0": bytes(MB)})


def storage_build() -> bytes:
    """BUILD on an allow-listed storage type, to make every later FloatStorage read as float64."""
    state = mapping([("name", text("DoubleStorage"))])
    return torch_zip(pickle.PROTO + b"\x02" + name("torch", "FloatStorage") + state
                     + pickle.BUILD + pickle.STOP)


def constructor_build() -> bytes:
    """BUILD with slot state on the reader's tensor constructor (setattr on a function)."""
    state = tuple_of(pickle.NONE, mapping([("__defaults__", tuple_of(integer(1)))]))
    return torch_zip(pickle.PROTO + b"\x02" + name("torch._utils", "_rebuild_tensor_v2") + state
                     + pickle.BUILD + pickle.STOP)


def fixture_args(**args: bytes) -> bytes:
    """tiny_train.pt with some model_args replaced by other pickled values."""
    source = zipfile.ZipFile(FIXTURES / "tiny_train.pt")
    pickled = source.read("tiny_train/data.pkl")
    for key, value in args.items():
        # model_args hold `BINUNICODE key, BINPUT n, value`; BININT1 is the value's opcode here.
        start = pickled.index(text(key)) + len(text(key)) + 2
        assert pickled[start:start + 1] == pickle.BININT1, key
        pickled = pickled[:start] + value + pickled[start + 2:]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for info in source.infolist():
            data = pickled if info.filename.endswith("data.pkl") else source.read(info)
            archive.writestr(info.filename, data)
    return buffer.getvalue()


# name -> (the file's bytes, phrases its sentence holds)
CASES = {
    "dict keyed by a 300,000-deep tuple": (deep_tuple_key, "nests containers more than 64 deep"),
    "lists nested 300,000 deep": (deep_lists, "nests containers more than 64 deep"),
    "a megabyte of MARKs": (lambda: torch_zip(pickle.MARK * MB), "nests pickle MARKs"),
    "a million opcodes": (lambda: torch_zip(pickle.PROTO + b"\x02" + (pickle.NONE + pickle.POP) * (MB // 2)),
                            "runs more than 500,000 pickle operations"),
    "a megabyte-long integer": (lambda: torch_zip(pickle.LONG4 + struct.pack("<i", MB) + b"\x01" * MB),
                                "integer of more than 128 bits"),
    "stride-0 view of 10^9 elements": (
        lambda: torch_zip(saved(mapping([("w", tensor("0", 1, 0, (10**9,), (0,)))])), {"0": FLOAT}),
        "tensor of 1,000,000,000 elements viewing a storage of 1"),
    "view past the end of its storage": (
        lambda: torch_zip(saved(mapping([("w", tensor("0", 4, 3, (2,), (1,)))])), {"0": FLOAT * 4}),
        "reaches past the end of its storage"),
    "negative stride": (
        lambda: torch_zip(saved(mapping([("w", tensor("0", 4, 3, (2,), (-1,)))])), {"0": FLOAT * 4}),
        "not small non-negative whole numbers"),
    "storage larger than its data": (
        lambda: torch_zip(saved(mapping([("w", tensor("0", 10**12, 0, (1,), (1,)))])), {"0": FLOAT}),
        "holds 1,000,000,000,000 elements"),
    "storage without data": (
        lambda: torch_zip(saved(mapping([("w", tensor("7", 1, 0, (1,), (1,)))]))),
        "lacks the data of storage 7"),
    "one storage viewed a thousand times": (many_views, "views its storages more times"),
    "zip of zeros": (zip_bomb, "would expand to", "zip bomb"),
    "encrypted entries": (lambda: with_flag_bits(torch_zip(saved(pickle.EMPTY_DICT)), 0x1),
                          "encrypted entry"),
    "bzip2 entries": (bzip2_entries, "compressed with method 12"),
    "BUILD on a storage type": (storage_build, "sets the state of a StorageType"),
    "BUILD on the tensor constructor": (constructor_build, "sets the state of a method"),
    "OrderedDict built from arguments": (
        lambda: torch_zip(saved(call(name("collections", "OrderedDict"), pickle.EMPTY_LIST))),
        "builds an OrderedDict from arguments"),
    "a call to a storage type": (lambda: torch_zip(saved(call(name("torch", "FloatStorage")))),
                                 "calls something that is not a tensor or dictionary constructor"),
    "NEWOBJ": (lambda: torch_zip(pickle.PROTO + b"\x02" + name("collections", "OrderedDict")
                                 + pickle.EMPTY_TUPLE + pickle.NEWOBJ + pickle.STOP),
               "uses a pickle operation that torch.save never writes"),
    "os.system": (lambda: torch_zip(saved(call(name("os", "system"), text("true")))),
                  "asks to run os.system"),
    "a list where the state dict belongs": (lambda: torch_zip(saved(pickle.EMPTY_LIST)),
                                            "no 'model' state dictionary"),
    "a 0-d tensor where the embedding belongs": (
        lambda: torch_zip(saved(mapping([("tok_embeddings.weight", tensor("0", 1, 0, (), ()))])),
                          {"0": FLOAT}),
        "tensor tok_embeddings.weight has shape (), but model_args give (32, 16)"),
    "whole-number weights": (
        lambda: torch_zip(saved(mapping([("tok_embeddings.weight",
                                          tensor("0", 512, 0, (32, 16), (16, 1), "LongStorage"))])),
                          {"0": bytes(8 * 512)}),
        "holds int64 values, not floating point"),
    "no weights at all": (lambda: torch_zip(saved(pickle.EMPTY_DICT)), "has no tensor tok_embeddings"),
    "dim = inf": (lambda: fixture_args(dim=pickle.BINFLOAT + struct.pack(">d", math.inf)),
                  "model_args give dim = inf"),
    "vocab_size = 10^30": (lambda: fixture_args(vocab_size=integer(10**30)),
                           "vocab_size = 1000000000000000000000000000000"),
    "n_layers = -2": (lambda: fixture_args(n_layers=integer(-2)), "n_layers = -2"),
    "n_heads = True": (lambda: fixture_args(n_heads=pickle.NEWTRUE), "n_heads = True"),
    "max_seq_len = '32'": (lambda: fixture_args(max_seq_len=text("32")), "max_seq_len = '32'"),
}


@pytest.fixture(scope="module", params=list(CASES))
def hostile_pt(request, tmp_path_factory) -> tuple[Path, tuple[str, ...]]:
    make, *phrases = CASES[request.param]
    folder = tmp_path_factory.mktemp("pt")
    path = folder / "model.pt"
    path.write_bytes(make())
    (folder / "out.bin.partial").write_bytes(b"a file of the user's")
    return path, tuple(phrases)


@pytest.mark.parametrize("command", ["validate", "export"])
def test_a_hostile_pt_is_refused_in_bounded_memory_and_writes_nothing(hostile_pt, command,
                                                                      tmp_path):
    path, phrases = hostile_pt
    before = folder_state(path.parent)
    args = [path] if command == "validate" else [path, path.parent / "out.bin"]
    outcome, peak_mb = run_measured(command, *args)
    assert_refused(outcome, 1, str(path), *phrases)
    assert peak_mb < PEAK_RSS_MB, (peak_mb, path.stat().st_size)
    assert folder_state(path.parent) == before


def sound_pt(path: Path, dim: int, hidden: int, layers: int, vocab: int) -> None:
    """A train.py-like .pt of random weights (classifier tied to the embedding), written
    storage by storage."""
    heads, kv_heads = 8, 4
    kv_dim = dim // heads * kv_heads
    shapes = {"tok_embeddings.weight": (vocab, dim), "norm.weight": (dim,)}
    for i in range(layers):
        shapes |= {f"layers.{i}.attention_norm.weight": (dim,),
                   f"layers.{i}.attention.wq.weight": (dim, dim),
                   f"layers.{i}.attention.wk.weight": (kv_dim, dim),
                   f"layers.{i}.attention.wv.weight": (kv_dim, dim),
                   f"layers.{i}.attention.wo.weight": (dim, dim),
                   f"layers.{i}.ffn_norm.weight": (dim,),
                   f"layers.{i}.feed_forward.w1.weight": (hidden, dim),
                   f"layers.{i}.feed_forward.w2.weight": (dim, hidden),
                   f"layers.{i}.feed_forward.w3.weight": (hidden, dim)}
    rng = np.random.default_rng(0)
    pairs = []
    with zipfile.ZipFile(path, "w") as archive:
        for key, (name_, shape) in enumerate(shapes.items()):
            count, strides = math.prod(shape), (shape[1], 1) if len(shape) == 2 else (1,)
            archive.writestr(f"archive/data/{key}",
                             (rng.standard_normal(count, np.float32) * 0.02).tobytes())
            pairs.append((name_, tensor(str(key), count, 0, shape, strides)))
        pairs.append(("output.weight", tensor("0", vocab * dim, 0, (vocab, dim), (dim, 1))))
        args = dict(dim=dim, hidden_dim=hidden, n_layers=layers, n_heads=heads,
                    n_kv_heads=kv_heads, vocab_size=vocab, max_seq_len=256)
        archive.writestr("archive/data.pkl",
                         saved(mapping(pairs), **{k: integer(v) for k, v in args.items()}))


def test_memory_follows_the_file_not_the_pickle(tmp_path):
    """A sound 17 MB .pt: validate peaks at about 36 MB + 3 times the file, export (which
    writes and validates the result as well) at about 36 MB + 4.3 times."""
    path = tmp_path / "model.pt"
    sound_pt(path, dim=256, hidden=768, layers=4, vocab=4096)
    size_mb = path.stat().st_size / 2**20
    validated, validate_mb = run_measured("validate", path)
    assert_refused(validated, 1, "convert it first with `llama2np export")
    exported, export_mb = run_measured("export", path, tmp_path / "out.bin", "--version", "1")
    assert exported.status == 0, exported.stderr
    assert validate_mb < 48 + 4 * size_mb, (validate_mb, size_mb)
    assert export_mb < 48 + 5 * size_mb, (export_mb, size_mb)


# -- the allow-list stays as it was ---------------------------------------------------------------


def test_no_pickle_changes_how_a_later_file_is_read(tmp_path):
    """A pickle that tries to set state on the allow-list's storage type or constructors is
    refused, and a clean file loaded next in the same process reads exactly as torch saved it."""
    for attack in (storage_build, constructor_build):
        with pytest.raises(CheckpointError, match="sets the state of"):
            load_pt(attack(), "attack.pt")
    saved_dict = load_pt((FIXTURES / "tiny_train.pt").read_bytes(), "tiny_train.pt")
    expected = np.load(FIXTURES / "tiny_train_expected.npz")
    for key in expected.files:
        assert saved_dict["model"][key].dtype == np.float32
        assert np.array_equal(saved_dict["model"][key], expected[key]), key
