"""Reading what `torch.save` wrote, without PyTorch and without running code from the file.

A .pt is a zip: `*/data.pkl` (a pickle) and `*/data/<key>` (raw tensor storages). A pickle is a
program: it may name any importable function and call it (`os.system` included). This reader
lets it name only what a saved state dict needs, rebuilt here as NumPy arrays, and refuses every
other name before anything is called.

A pickle is also a program that can ask for memory and recursion it never states up front, so
the pickle runs on the standard library's pure-Python unpickler (`pickle._Unpickler`), whose
opcode table is replaced here by a table of the few opcodes `torch.save` writes, each wrapped in
checks: a budget of opcodes, of MARK nesting and of container nesting, small integers, plain
dictionary keys, calls only to this reader's constructors, no state set on anything but a
dictionary the reader made. The C unpickler cannot be checked this way: it builds a
300,000-deep nested tuple without recursing and then crashes hashing it as a dictionary key.
Every size the zip and the pickle state (entries, storages, tensor shapes and strides) is
checked against the bytes actually there before anything is allocated, so a file of N bytes
costs a few times N of memory at most, plus the fixed budgets below.
"""

import io
import math
import pickle
import struct
import zipfile
import zlib
from collections import OrderedDict
from types import MappingProxyType
from typing import NamedTuple

import numpy as np

from llama2np.runtime.errors import CheckpointError

# torch's storage classes, by the element type they hold.
STORAGE_DTYPES = MappingProxyType({
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "BFloat16Storage": np.dtype("<u2"),  # widened to float32 in rebuild_tensor
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
})

# Budgets. A train.py checkpoint of a 100-layer model with its optimizer state runs about
# 100,000 opcodes, nests MARKs 3 deep and containers 4 deep; its pickle is a few hundred KB.
MAX_OPCODES = 500_000  # each makes at most one object: under 60 MB even for the largest kind
MAX_MARK_DEPTH = 64
MAX_NESTING = 64
MAX_INT_BITS = 128  # torch writes sizes, strides and offsets as 64-bit integers
MAX_DIMENSIONS = 8
MAX_PICKLE_BYTES = 64 << 20
# Uncompressed bytes a zip may hold: torch.save stores entries uncompressed (ratio 1); a deflated
# copy of float weights shrinks a little. A zip bomb expands a thousand times.
MAX_EXPANSION = 4
FIXED_ALLOWANCE = 1 << 20
# Tensors may add up to this many times the bytes of the storages they view (float16 widens to
# float32; train.py's tied classifier views the embedding a second time). Without it, one small
# storage viewed by many tensors would cost its size once per view.
MAX_TENSOR_EXPANSION = 4


class StorageType(NamedTuple):
    """Stands in for torch.<X>Storage: only its name is used, to pick the dtype. A tuple, so
    nothing a pickle does can change it for a later load."""

    name: str


class Storage:
    """A storage's raw bytes as a flat NumPy array of its element type."""

    def __init__(self, kind: StorageType, data: bytes) -> None:
        self.kind = kind
        self.bfloat16 = kind.name == "BFloat16Storage"
        self.array = np.frombuffer(data, dtype=STORAGE_DTYPES[kind.name])


# What a pickle may name: a constructor of this reader (by method name, so that every load gets
# its own bound method, which no opcode can modify) or a storage type (an immutable tuple).
ALLOWED = MappingProxyType({
    ("collections", "OrderedDict"): "new_ordered_dict",
    ("torch._utils", "_rebuild_tensor_v2"): "rebuild_tensor",
    ("torch._utils", "_rebuild_parameter"): "rebuild_parameter",
    **{("torch", name): StorageType(name) for name in STORAGE_DTYPES},
})
CONSTRUCTORS = frozenset(name for name in ALLOWED.values() if isinstance(name, str))
CONTAINERS = frozenset((tuple, list, dict, OrderedDict))
# Dictionary keys are hashed by C code that recurses without a guard; plain values hash flatly.
PLAIN_KEYS = (str, int, float, bool, bytes, type(None))


class RestrictedUnpickler(pickle._Unpickler):
    """The pure-Python unpickler with a table of checked opcodes (filled in below the class)."""

    dispatch: dict = {}

    def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str, name: str) -> None:
        super().__init__(io.BytesIO(data))
        self.archive, self.prefix, self.name = archive, prefix, name
        self.opcodes = 0
        self.nesting: dict[int, tuple[object, int]] = {}  # id -> (container, depth), kept alive
        self.storages: dict[str, Storage] = {}  # every storage is read once, by key
        data_names = [i for i in archive.infolist() if i.filename.startswith(prefix + "data/")]
        self.tensor_budget = (MAX_TENSOR_EXPANSION * sum(i.file_size for i in data_names)
                              + FIXED_ALLOWANCE)

    def refuse(self, what: str) -> CheckpointError:
        return CheckpointError(f"{self.name} {what}; it is not a checkpoint this reader will load "
                               "(the file is damaged or was made to attack the reader).")

    # -- what a pickle may name and call ---------------------------------------------------------

    def find_class(self, module: str, name: str) -> object:
        try:
            allowed = ALLOWED[(module, name)]
        except KeyError:
            raise CheckpointError(
                f"{self.name} asks to run {module[:100]}.{name[:100]}, which a checkpoint never "
                "needs; refusing to load it (it may be malicious)."
            ) from None
        return getattr(self, allowed) if isinstance(allowed, str) else allowed

    def new_ordered_dict(self, *args: object) -> OrderedDict:
        """collections.OrderedDict(): torch writes it empty and adds the items with SETITEMS."""
        if args:
            raise self.refuse("builds an OrderedDict from arguments")
        return OrderedDict()

    def rebuild_tensor(self, storage: object, offset: object, size: object, stride: object,
                       *_: object) -> np.ndarray:
        """torch._utils._rebuild_tensor_v2: a view of the storage; floats come back as float32.

        The view must lie inside its storage and address no more elements than the storage
        holds, so that the copy costs no more than the bytes the file really has."""
        if not isinstance(storage, Storage):
            raise self.refuse("builds a tensor on something that is not a storage")
        if not (is_count(offset) and isinstance(size, tuple) and isinstance(stride, tuple)
                and len(size) == len(stride) <= MAX_DIMENSIONS
                and all(map(is_count, size)) and all(map(is_count, stride))):
            raise self.refuse("gives a tensor an offset, shape or strides that are not small "
                              "non-negative whole numbers")
        array = storage.array
        count = math.prod(size)
        if count > len(array):
            raise self.refuse(f"has a tensor of {count:,} elements viewing a storage of "
                              f"{len(array):,}")
        if count and offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True)) >= len(array):
            raise self.refuse("has a tensor that reaches past the end of its storage")
        self.tensor_budget -= count * max(array.itemsize, 4)
        if self.tensor_budget < 0:
            raise self.refuse("views its storages more times than a checkpoint does")
        strides = tuple(s * array.itemsize if n > 1 else 0 for n, s in zip(size, stride, strict=True))
        view = np.lib.stride_tricks.as_strided(array[offset:] if count else array, shape=size,
                                               strides=strides, writeable=False)
        if storage.bfloat16:  # bfloat16 is the top half of a float32
            return (view.astype(np.uint32) << 16).view(np.float32)
        if view.dtype.kind == "f":
            return view.astype(np.float32, copy=False)  # float32 storages stay uncopied
        return view.copy()

    def rebuild_parameter(self, data: object, *_: object) -> np.ndarray:
        """torch._utils._rebuild_parameter: a Parameter is just its tensor here."""
        if not isinstance(data, np.ndarray):
            raise self.refuse("makes a parameter of something that is not a tensor")
        return data

    def persistent_load(self, pid: object) -> Storage:
        # ("storage", storage type, key, location, number of elements)
        if not (isinstance(pid, tuple) and len(pid) == 5 and type(pid[0]) is str
                and pid[0] == "storage"
                and isinstance(pid[1], StorageType) and isinstance(pid[2], str)
                and is_count(pid[4])):
            raise self.refuse("refers to a storage this reader does not know")
        kind, key, count = pid[1], pid[2], pid[4]
        if key in self.storages:
            storage = self.storages[key]
            if storage.kind != kind or len(storage.array) != count:
                raise self.refuse(f"uses storage {key[:40]} with two different types or sizes")
            return storage
        try:
            info = self.archive.getinfo(f"{self.prefix}data/{key}")
        except KeyError:
            raise CheckpointError(f"{self.name} lacks the data of storage {key[:40]}; "
                                  "the file is damaged.") from None
        itemsize = STORAGE_DTYPES[kind.name].itemsize
        if info.file_size != count * itemsize:
            raise self.refuse(f"says storage {key[:40]} holds {count:,} elements of {itemsize} "
                              f"bytes, but its data has {info.file_size:,} bytes")
        self.storages[key] = Storage(kind, read_entry(self.archive, info))
        return self.storages[key]

    # -- the checks around opcodes ---------------------------------------------------------------

    def depth(self, value: object) -> int:
        """How deep `value` nests: 0 for a plain value, 1 for a container of plain values (only
        deeper ones are recorded, which keeps the record small)."""
        entry = self.nesting.get(id(value))
        if entry is not None and entry[0] is value:
            return entry[1]
        return 1 if type(value) in CONTAINERS else 0

    def contains(self, container: object, items: object) -> None:
        """Record how deep `container` nests now that it holds `items`, refusing deep nesting."""
        depth = max(self.depth(container), 1 + max(map(self.depth, items), default=0))
        if depth > MAX_NESTING:
            raise self.refuse(f"nests containers more than {MAX_NESTING} deep")
        if depth > 1:
            self.nesting[id(container)] = (container, depth)

    def target(self, kinds: tuple[type, ...]) -> object:
        """The container an APPEND or SETITEM changes: only one the pickle itself built."""
        target = self.stack[-1]
        if type(target) not in kinds:
            raise self.refuse(f"adds items to a {type(target).__name__}")
        return target


def is_count(value: object) -> bool:
    """A small non-negative int (not a bool): what sizes, strides and offsets must be."""
    return type(value) is int and 0 <= value < 1 << 62


# -- the opcode table ---------------------------------------------------------------------------

BASE = pickle._Unpickler.dispatch
OP = {name: code[0] for name, code in vars(pickle).items()
      if name.isupper() and isinstance(code, bytes) and len(code) == 1}


def checked(handler: object) -> object:
    """Counts the opcode against the budget before running it."""

    def run(self: RestrictedUnpickler) -> None:
        self.opcodes += 1
        if self.opcodes > MAX_OPCODES:
            raise self.refuse(f"runs more than {MAX_OPCODES:,} pickle operations")
        handler(self)

    return run


def load_mark(self: RestrictedUnpickler) -> None:
    if len(self.metastack) >= MAX_MARK_DEPTH:
        raise self.refuse(f"nests pickle MARKs more than {MAX_MARK_DEPTH} deep")
    BASE[OP["MARK"]](self)


def pushes_container(opcode: str) -> object:
    """TUPLE, LIST and the like: run them, then record the new container's depth."""

    def run(self: RestrictedUnpickler) -> None:
        BASE[OP[opcode]](self)
        self.contains(self.stack[-1], self.stack[-1])

    return run


def pushes_int(opcode: str) -> object:
    """LONG1 and LONG4: torch writes no integer wider than 64 bits."""

    def run(self: RestrictedUnpickler) -> None:
        BASE[OP[opcode]](self)
        if abs(self.stack[-1]).bit_length() > MAX_INT_BITS:
            raise self.refuse(f"holds an integer of more than {MAX_INT_BITS} bits")

    return run


def load_appends(self: RestrictedUnpickler) -> None:
    items = self.pop_mark()
    target = self.target((list,))
    self.contains(target, items)
    target.extend(items)


def load_append(self: RestrictedUnpickler) -> None:
    item = self.stack.pop()
    target = self.target((list,))
    self.contains(target, (item,))
    target.append(item)


def set_items(self: RestrictedUnpickler, target: dict, items: list) -> None:
    keys, values = items[::2], items[1::2]
    if len(keys) != len(values) or any(type(key) not in PLAIN_KEYS for key in keys):
        raise self.refuse("keys a dictionary by something other than a string or a number")
    self.contains(target, values)
    target.update(zip(keys, values, strict=True))


def load_setitems(self: RestrictedUnpickler) -> None:
    items = self.pop_mark()
    set_items(self, self.target((dict, OrderedDict)), items)


def load_setitem(self: RestrictedUnpickler) -> None:
    value = self.stack.pop()
    key = self.stack.pop()
    set_items(self, self.target((dict, OrderedDict)), [key, value])


def load_dict(self: RestrictedUnpickler) -> None:
    items = self.pop_mark()
    self.append({})
    set_items(self, self.stack[-1], items)


def load_reduce(self: RestrictedUnpickler) -> None:
    """Calls only this load's own constructors, with a tuple of arguments."""
    args = self.stack.pop()
    func = self.stack[-1]
    if not (getattr(func, "__self__", None) is self and func.__name__ in CONSTRUCTORS
            and type(args) is tuple):
        raise self.refuse("calls something that is not a tensor or dictionary constructor")
    self.stack[-1] = func(*args)


def load_build(self: RestrictedUnpickler) -> None:
    """train.py's state dicts carry module versions (`_metadata`) as BUILD state on an
    OrderedDict; the reader has no use for them, so they are dropped. BUILD on anything else
    would set attributes, which is how a pickle changes a reader's behaviour: refused."""
    self.stack.pop()
    if type(self.stack[-1]) is not OrderedDict:
        raise self.refuse(f"sets the state of a {type(self.stack[-1]).__name__}")


def refuse_opcode(self: RestrictedUnpickler) -> None:
    raise self.refuse("uses a pickle operation that torch.save never writes")


# The opcodes torch.save writes (protocols 2 to 5) and plain data; anything else is refused.
PLAIN = ("PROTO", "FRAME", "STOP", "POP", "POP_MARK", "DUP", "NONE", "NEWTRUE", "NEWFALSE",
         "EMPTY_TUPLE", "EMPTY_LIST", "EMPTY_DICT",
         "BININT", "BININT1", "BININT2", "BINFLOAT", "BINUNICODE", "SHORT_BINUNICODE",
         "BINUNICODE8", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "BINGET", "LONG_BINGET",
         "BINPUT", "LONG_BINPUT", "MEMOIZE", "GLOBAL", "STACK_GLOBAL", "BINPERSID")
TABLE = {
    **{OP[name]: BASE[OP[name]] for name in PLAIN},
    **{OP[name]: pushes_container(name) for name in ("TUPLE", "TUPLE1", "TUPLE2", "TUPLE3",
                                                     "LIST")},
    **{OP[name]: pushes_int(name) for name in ("LONG1", "LONG4")},
    OP["MARK"]: load_mark, OP["APPEND"]: load_append, OP["APPENDS"]: load_appends,
    OP["SETITEM"]: load_setitem, OP["SETITEMS"]: load_setitems, OP["DICT"]: load_dict,
    OP["REDUCE"]: load_reduce, OP["BUILD"]: load_build,
}
RestrictedUnpickler.dispatch = {code: checked(TABLE.get(code, refuse_opcode)) for code in range(256)}


# -- the zip --------------------------------------------------------------------------------------


def read_entry(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """An entry's bytes, never more than the size its header states (checked beforehand)."""
    with archive.open(info) as entry:
        return entry.read(info.file_size)


def check_entries(archive: zipfile.ZipFile, file_bytes: int, name: str) -> None:
    """Refuse encrypted and unusually compressed entries, and more uncompressed bytes than the
    file could hold, before reading any entry."""
    total = 0
    for info in archive.infolist():
        if info.flag_bits & 0x1:
            raise CheckpointError(f"{name} has an encrypted entry ({info.filename[:100]}); "
                                  "torch.save never encrypts, so it cannot be read.")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise CheckpointError(f"{name} has an entry ({info.filename[:100]}) compressed with "
                                  f"method {info.compress_type}; only stored and deflated "
                                  "entries are read. Save it again with torch.save.")
        total += info.file_size
    if total > MAX_EXPANSION * file_bytes + FIXED_ALLOWANCE:
        raise CheckpointError(f"{name} would expand to {total:,} bytes from {file_bytes:,}; "
                              "a checkpoint does not compress like that (it may be a zip bomb).")


# A train.py checkpoint holds a pickle, a version and one storage per tensor: nine per layer and
# a few more, so a few hundred entries even at 100 layers. Python's zipfile reads the whole
# directory into objects of some 500 bytes each before anything can look at it.
MAX_ZIP_ENTRIES = 10_000
END_OF_DIRECTORY = b"PK\x05\x06"


def check_entry_count(data: bytes, name: str) -> None:
    """Refuse a zip whose directory lists more entries than a checkpoint has, from the count its
    end record gives (the ZIP64 record's too), before any entry is read."""
    end = data.rfind(END_OF_DIRECTORY, max(0, len(data) - (1 << 16) - 22))
    if end < 0 or end + 22 > len(data):
        return  # zipfile names the damage itself
    count = struct.unpack_from("<H", data, end + 10)[0]
    locator = end - 20
    if locator >= 0 and data[locator:locator + 4] == b"PK\x06\x07":
        record = struct.unpack_from("<Q", data, locator + 8)[0]
        if record + 40 <= len(data) and data[record:record + 4] == b"PK\x06\x06":
            count = max(count, struct.unpack_from("<Q", data, record + 32)[0])
    if count > MAX_ZIP_ENTRIES:
        raise CheckpointError(f"{name} lists {count:,} entries, more than the {MAX_ZIP_ENTRIES:,} "
                              "a train.py checkpoint could have; it is not a model.")


def load_pt(data: bytes, name: str) -> object:
    """The object `torch.save` stored, with tensors as NumPy arrays; refuses anything else."""
    try:
        check_entry_count(data, name)
        archive = zipfile.ZipFile(io.BytesIO(data))
        check_entries(archive, len(data), name)
        pickles = [i for i in archive.infolist()
                   if i.filename.endswith("/data.pkl") or i.filename == "data.pkl"]
        if len(pickles) != 1:
            raise CheckpointError(f"{name} is a zip file but not one written by torch.save.")
        if pickles[0].file_size > MAX_PICKLE_BYTES:
            raise CheckpointError(f"{name}'s pickle is {pickles[0].file_size:,} bytes, more than "
                                  f"the {MAX_PICKLE_BYTES:,} a checkpoint's needs.")
        prefix = pickles[0].filename[: -len("data.pkl")]
        unpickler = RestrictedUnpickler(read_entry(archive, pickles[0]), archive, prefix, name)
        return unpickler.load()
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, zlib.error, pickle.UnpicklingError, EOFError, ValueError,
            TypeError, AttributeError, IndexError, KeyError, struct.error, OverflowError,
            NotImplementedError, RuntimeError) as error:
        # RuntimeError covers RecursionError too. The message is cut: it may quote the file.
        detail = f"{type(error).__name__}: {str(error)[:200]}"
        raise CheckpointError(f"{name} is a damaged PyTorch file ({detail}).") from None
