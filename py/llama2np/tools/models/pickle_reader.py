"""Reading what `torch.save` wrote, without PyTorch and without running code from the file.

A .pt is a zip: `*/data.pkl` (a pickle) and `*/data/<key>` (raw tensor storages). A pickle is a
program: it may name any importable function and call it (`os.system` included). This reader
lets it name only what a saved state dict needs, rebuilt here as NumPy arrays, and refuses every
other name before anything is called.
"""

import io
import pickle
import zipfile
from collections import OrderedDict

import numpy as np

from llama2np.errors import CheckpointError

# torch's storage classes, by the element type they hold.
STORAGE_DTYPES = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "BFloat16Storage": np.dtype("<u2"),  # widened to float32 in tensor_from_storage
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


class StorageType:
    """Stands in for torch.<X>Storage: only its name is used, to pick the dtype."""

    def __init__(self, name: str) -> None:
        self.name = name


class Storage:
    """A storage's raw bytes as a flat NumPy array of its element type."""

    def __init__(self, kind: StorageType, data: bytes) -> None:
        self.bfloat16 = kind.name == "BFloat16Storage"
        self.array = np.frombuffer(data, dtype=STORAGE_DTYPES[kind.name])


def rebuild_tensor(storage: Storage, offset: int, size: tuple, stride: tuple, *_: object) -> np.ndarray:
    """torch._utils._rebuild_tensor_v2: a view of the storage; floats come back as float32."""
    array = storage.array
    itemsize = array.itemsize
    if any(s < 0 for s in stride) or offset < 0:
        raise CheckpointError("a tensor has a negative stride or offset; the file is damaged.")
    if all(size) and offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True)) >= len(array):
        raise CheckpointError("a tensor reaches past the end of its storage; the file is damaged.")
    view = np.lib.stride_tricks.as_strided(array[offset:], shape=tuple(size),
                                           strides=tuple(s * itemsize for s in stride))
    if storage.bfloat16:  # bfloat16 is the top half of a float32
        return (view.astype(np.uint32) << 16).view(np.float32).copy()
    if view.dtype.kind == "f":
        return view.astype(np.float32)
    return view.copy()


def rebuild_parameter(data: np.ndarray, *_: object) -> np.ndarray:
    """torch._utils._rebuild_parameter: a Parameter is just its tensor here."""
    return data


ALLOWED = {
    ("collections", "OrderedDict"): OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): rebuild_parameter,
    **{("torch", name): StorageType(name) for name in STORAGE_DTYPES},
}


class RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str, name: str) -> None:
        super().__init__(io.BytesIO(data))
        self.archive, self.prefix, self.name = archive, prefix, name

    def find_class(self, module: str, name: str) -> object:
        try:
            return ALLOWED[(module, name)]
        except KeyError:
            raise CheckpointError(
                f"{self.name} asks to run {module}.{name}, which a checkpoint never needs; "
                "refusing to load it (it may be malicious)."
            ) from None

    def persistent_load(self, pid: object) -> Storage:
        # ("storage", storage type, key, location, number of elements)
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
                and isinstance(pid[1], StorageType)):
            raise CheckpointError(f"{self.name} refers to a storage this reader does not know.")
        key = str(pid[2])
        try:
            data = self.archive.read(f"{self.prefix}data/{key}")
        except KeyError:
            raise CheckpointError(f"{self.name} lacks the data of storage {key}; the file is damaged.") from None
        return Storage(pid[1], data)


def load_pt(data: bytes, name: str) -> object:
    """The object `torch.save` stored, with tensors as NumPy arrays; refuses anything else."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pickles) != 1:
            raise CheckpointError(f"{name} is a zip file but not one written by torch.save.")
        prefix = pickles[0][: -len("data.pkl")]
        return RestrictedUnpickler(archive.read(pickles[0]), archive, prefix, name).load()
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, pickle.UnpicklingError, EOFError, ValueError, TypeError,
            AttributeError, IndexError, KeyError) as error:
        raise CheckpointError(f"{name} is a damaged PyTorch file ({type(error).__name__}: {error}).") from None
