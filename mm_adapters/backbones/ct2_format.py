"""Read a CTranslate2 ``model.bin`` with numpy (the layout ``ctranslate2.specs.model_spec.ModelSpec._serialize``
writes), and write one (for tests, and to hand a model back to CTranslate2).

Layout, little-endian: ``u32`` binary version, the spec name and ``u32`` revision, ``u32`` variable count, then per
variable its name, ``u8`` rank, ``u32`` dims, ``u8`` dtype id, ``u32`` byte count and the bytes; then ``u32`` alias
count and (alias, target) name pairs. A string is ``u16`` length (with the trailing NUL), the UTF-8 bytes and NUL.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

BINARY_VERSION = 6
"""The CT2 binary version this reader and writer follow (ctranslate2 4.x)."""
DTYPES = ("float32", "int8", "int16", "int32", "float16", "bfloat16")
"""Type ids in the order of CTranslate2's ``DataType`` enum (bfloat16 is read as raw uint16 and widened)."""


class CT2FormatError(ValueError):
    """A ``model.bin`` that is not a CTranslate2 model this reader understands."""


@dataclass
class CT2Model:
    spec_name: str
    revision: int
    variables: dict[str, np.ndarray]
    """Every variable by name; aliases (CTranslate2 stores duplicated weights once) point at the same array."""


def read_ct2_model(path: str | Path) -> CT2Model:
    """Parse ``model.bin`` (or the folder holding it) into numpy arrays, aliases resolved."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.bin"
    data = memoryview(path.read_bytes())
    reader = _Reader(data, path)
    version = reader.unpack("I")
    if version != BINARY_VERSION:
        raise CT2FormatError(
            f"{path} is CTranslate2 binary version {version}; this reader follows version {BINARY_VERSION}. "
            "Re-convert the model with ctranslate2 4.x."
        )
    spec_name, revision = reader.string(), reader.unpack("I")
    variables: dict[str, np.ndarray] = {}
    for _ in range(reader.unpack("I")):
        name = reader.string()
        shape = tuple(reader.unpack("I") for _ in range(reader.unpack("B")))
        type_id, num_bytes = reader.unpack("B"), reader.unpack("I")
        if type_id >= len(DTYPES):
            raise CT2FormatError(f"{path}: variable {name!r} has unknown dtype id {type_id}.")
        variables[name] = _array(reader.take(num_bytes), DTYPES[type_id], shape)
    for _ in range(reader.unpack("I")):
        alias, target = reader.string(), reader.string()
        if target not in variables:
            raise CT2FormatError(f"{path}: alias {alias!r} points at missing variable {target!r}.")
        variables[alias] = variables[target]
    if reader.offset != len(data):
        raise CT2FormatError(f"{path} has {len(data) - reader.offset} unread bytes after the aliases.")
    return CT2Model(spec_name, revision, variables)


def write_ct2_model(path: str | Path, model: CT2Model) -> Path:
    """Write ``model`` as ``model.bin`` (arrays that are the same object are written once, as aliases)."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.bin"
    seen: dict[int, str] = {}
    stored, aliases = [], []
    for name in sorted(model.variables):
        value = model.variables[name]
        if id(value) in seen:
            aliases.append((name, seen[id(value)]))
        else:
            seen[id(value)] = name
            stored.append((name, np.asarray(value).copy(order="C")))
    with open(path, "wb") as out:
        out.write(struct.pack("<I", BINARY_VERSION))
        _write_string(out, model.spec_name)
        out.write(struct.pack("<II", model.revision, len(stored)))
        for name, value in stored:
            if value.dtype.name not in DTYPES:
                raise CT2FormatError(f"Cannot write variable {name!r} of dtype {value.dtype}.")
            _write_string(out, name)
            out.write(struct.pack("<B", value.ndim))
            out.write(struct.pack(f"<{value.ndim}I", *value.shape))
            out.write(struct.pack("<BI", DTYPES.index(value.dtype.name), value.nbytes))
            out.write(value.tobytes())
        out.write(struct.pack("<I", len(aliases)))
        for alias, target in aliases:
            _write_string(out, alias)
            _write_string(out, target)
    return path


class _Reader:
    def __init__(self, data: memoryview, path: Path) -> None:
        self.data, self.path, self.offset = data, path, 0

    def take(self, size: int) -> memoryview:
        if self.offset + size > len(self.data):
            raise CT2FormatError(f"{self.path} is truncated (wanted {size} bytes at offset {self.offset}).")
        chunk = self.data[self.offset : self.offset + size]
        self.offset += size
        return chunk

    def unpack(self, fmt: str) -> int:
        return struct.unpack("<" + fmt, self.take(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        raw = bytes(self.take(self.unpack("H")))
        if not raw.endswith(b"\0"):
            raise CT2FormatError(f"{self.path}: a name at offset {self.offset} is not NUL-terminated.")
        return raw[:-1].decode("utf-8")


def _array(raw: memoryview, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    if dtype == "bfloat16":  # numpy has no bfloat16: widen the upper half of a float32
        widened = np.frombuffer(raw, dtype="<u2").astype("<u4") << 16
        return widened.view("<f4").reshape(shape)
    return np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<")).reshape(shape)


def _write_string(out, text: str) -> None:
    encoded = text.encode("utf-8")
    out.write(struct.pack("<H", len(encoded) + 1))
    out.write(encoded + b"\0")
