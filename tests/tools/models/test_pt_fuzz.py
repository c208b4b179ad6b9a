"""Property: whatever is done to a real torch.save file, the .pt reader ends in a Checkpoint
(which the runtime's reader then accepts once written as llama2.c) or in the product's own
error; never another exception, a crash, or runaway memory.

The mutations start from tests/fixtures/tiny_train.pt: bytes of the whole file (the zip layer),
bytes of its pickle re-zipped with valid checksums (so the unpickler sees them), whole opcodes
replaced, deleted, duplicated or swapped, and zip members swapped, dropped or renamed.

Profiles: "default" (the normal run, about 2,400 cases in all) and "thorough" (ten times more):
HYPOTHESIS_PROFILE=thorough.
"""

import io
import pickle
import pickletools
import re
import struct
import tracemalloc
import warnings
import zipfile

import pytest
from fuzzing import cases
from hypothesis import event, given
from hypothesis import strategies as st
from llama2np.runtime.checkpoint import Checkpoint, read_checkpoint
from llama2np.runtime.errors import Llama2npError
from llama2np.tools.models.checkpoint_writer import write_checkpoint
from llama2np.tools.models.torch_checkpoint import checkpoint_from_pt
from support import FIXTURES

PROFILE = cases(600)

ORIGINAL = (FIXTURES / "tiny_train.pt").read_bytes()
MEMBERS = [(info.filename, zipfile.ZipFile(io.BytesIO(ORIGINAL)).read(info))
           for info in zipfile.ZipFile(io.BytesIO(ORIGINAL)).infolist()]
PICKLE_INDEX = next(i for i, (name, _) in enumerate(MEMBERS) if name.endswith("data.pkl"))
PICKLED = MEMBERS[PICKLE_INDEX][1]
# Each opcode of the pickle as its bytes, in order.
_POSITIONS = [pos for _, _, pos in pickletools.genops(PICKLED)] + [len(PICKLED)]
OPCODES = [PICKLED[a:b] for a, b in zip(_POSITIONS, _POSITIONS[1:], strict=False)]
# What an opcode may be replaced with: values of every kind, big and odd numbers, and the
# opcodes that build, call and nest.
REPLACEMENTS = [
    pickle.NONE, pickle.NEWTRUE, pickle.NEWFALSE, pickle.EMPTY_TUPLE, pickle.EMPTY_LIST,
    pickle.EMPTY_DICT, pickle.MARK, pickle.TUPLE, pickle.TUPLE1, pickle.TUPLE2, pickle.TUPLE3,
    pickle.LIST, pickle.DICT, pickle.APPEND, pickle.APPENDS, pickle.SETITEM, pickle.SETITEMS,
    pickle.REDUCE, pickle.BUILD, pickle.BINPERSID, pickle.POP, pickle.DUP, pickle.STOP,
    pickle.BINGET + b"\x00", pickle.BINGET + b"\x07", pickle.BINPUT + b"\x00",
    pickle.LONG_BINGET + b"\xff\xff\xff\xff",
    pickle.BININT + struct.pack("<i", -1), pickle.BININT + struct.pack("<i", 2**31 - 1),
    pickle.BININT1 + b"\x00", pickle.LONG1 + b"\x08" + (2**62).to_bytes(8, "little"),
    pickle.LONG1 + b"\x10" + b"\xff" * 16,
    pickle.BINFLOAT + struct.pack(">d", float("inf")), pickle.BINFLOAT + struct.pack(">d", float("nan")),
    pickle.BINUNICODE + b"\x07\x00\x00\x00storage", pickle.BINUNICODE + b"\x01\x00\x00\x000",
    pickle.GLOBAL + b"torch\nFloatStorage\n", pickle.GLOBAL + b"torch\nLongStorage\n",
    pickle.GLOBAL + b"torch._utils\n_rebuild_tensor_v2\n", pickle.GLOBAL + b"collections\nOrderedDict\n",
    pickle.GLOBAL + b"os\nsystem\n", pickle.INST + b"os\nsystem\n", pickle.NEWOBJ, pickle.EMPTY_SET,
]


def zipped(members: list[tuple[str, bytes]], compression: int = zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # duplicate names are one of the mutations
        warnings.simplefilter("ignore", UserWarning)
        with zipfile.ZipFile(buffer, "w", compression) as archive:
            for name, data in members:
                archive.writestr(name, data)
    return buffer.getvalue()


def with_pickle(pickled: bytes) -> bytes:
    members = list(MEMBERS)
    members[PICKLE_INDEX] = (members[PICKLE_INDEX][0], pickled)
    return zipped(members)


@st.composite
def byte_edits(draw: st.DrawFn, data: bytes) -> bytes:
    """A few flips, overwrites, insertions, deletions and truncations of `data`."""
    data = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        edit = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "repeat"]))
        if edit == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif edit == "set" and data:
            data[at] = draw(st.integers(0, 255))
        elif edit == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif edit == "delete":
            del data[at:at + draw(st.integers(1, 64))]
        elif edit == "truncate":
            del data[at:]
        elif edit == "repeat":
            data[at:at] = data[at:at + draw(st.integers(1, 256))]
    return bytes(data)


def list_edits(draw: st.DrawFn, items: list, special: dict) -> list:
    """A copy of `items` after one to three edits: deleting, duplicating or swapping items, or
    one of `special` (name -> function of the list and a position)."""
    items = list(items)
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(items) - 1))
        edit = draw(st.sampled_from(["delete", "duplicate", "swap", *special]))
        if edit == "delete" and len(items) > 1:
            del items[at]
        elif edit == "duplicate":
            items.insert(at, items[at])
        elif edit == "swap":
            other = draw(st.integers(0, len(items) - 1))
            items[at], items[other] = items[other], items[at]
        elif edit in special:
            special[edit](items, at)
    return items


@st.composite
def opcode_edits(draw: st.DrawFn) -> bytes:
    """The pickle with whole opcodes replaced, inserted, deleted, duplicated or swapped."""

    def replace(ops: list, at: int) -> None:
        ops[at] = draw(st.sampled_from(REPLACEMENTS))

    def insert(ops: list, at: int) -> None:
        ops.insert(at, draw(st.sampled_from(REPLACEMENTS)))

    return with_pickle(b"".join(list_edits(draw, OPCODES, {"replace": replace, "insert": insert})))


@st.composite
def member_edits(draw: st.DrawFn) -> bytes:
    """Zip members reordered, dropped, doubled, renamed, given another's data or cut short,
    stored or deflated."""
    names = [name for name, _ in MEMBERS] + ["data.pkl", "x/data.pkl"]

    def swap_data(members: list, at: int) -> None:
        other = draw(st.integers(0, len(members) - 1))
        (name, data), (other_name, other_data) = members[at], members[other]
        members[at], members[other] = (name, other_data), (other_name, data)

    def rename(members: list, at: int) -> None:
        members[at] = (draw(st.sampled_from(names)), members[at][1])

    def cut(members: list, at: int) -> None:
        name, data = members[at]
        members[at] = (name, data[: draw(st.integers(0, len(data)))])

    def double(members: list, at: int) -> None:
        name, data = members[at]
        members[at] = (name, data * 2)

    members = list_edits(draw, MEMBERS, {"swap data": swap_data, "rename": rename, "cut": cut,
                                         "double": double})
    compression = draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]))
    return zipped(members, compression)


# Memory one read may allocate at its peak, for a file of 35 KB: the fixed
# budgets of the reader (its opcode budget costs 40 MB at worst) and a few times the file.
PEAK_MB = 64


def read_or_refuse(data: bytes) -> None:
    """The property: a Checkpoint the runtime accepts once written, or Llama2npError; and the
    read stays within the memory guard."""
    # tracemalloc sees Python's and NumPy's allocations; traced for the read alone, since the
    # process's own peak would count what Hypothesis keeps between cases.
    tracemalloc.start()
    try:
        checkpoint = checkpoint_from_pt(data, "mutated.pt")
    except Llama2npError as error:
        # What refused it, for --hypothesis-show-statistics.
        event(re.sub(r"\d+", "N", " ".join(str(error).split()[1:4])))
    else:
        event("read")
        assert isinstance(checkpoint, Checkpoint)
        assert read_checkpoint(write_checkpoint(checkpoint, 1)).config == checkpoint.config
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak / 2**20 < PEAK_MB, peak


def test_the_fixture_itself_reads():
    checkpoint = checkpoint_from_pt(ORIGINAL, "tiny_train.pt")
    assert checkpoint.config.dim == 16 and with_pickle(PICKLED) != b""
    assert checkpoint_from_pt(with_pickle(b"".join(OPCODES)), "rezipped.pt").config == checkpoint.config


@PROFILE
@given(byte_edits(ORIGINAL))
def test_file_bytes_mutated(data):
    read_or_refuse(data)


@PROFILE
@given(byte_edits(PICKLED).map(with_pickle))
def test_pickle_bytes_mutated(data):
    read_or_refuse(data)


@PROFILE
@given(opcode_edits())
def test_pickle_opcodes_edited(data):
    read_or_refuse(data)


@PROFILE
@given(member_edits())
def test_zip_members_edited(data):
    read_or_refuse(data)


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_unmutated_rezip_reads(compression):
    """The strategies start from something that reads: re-zipping alone changes nothing."""
    assert isinstance(checkpoint_from_pt(zipped(MEMBERS, compression), "rezipped.pt"), Checkpoint)
