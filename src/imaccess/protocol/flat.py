"""A small, fast FlatBuffers writer and reader for flat tables.

The FlatBuffers Python runtime spends ~100 µs building a ChatMessage and as much reading
one back: on a gateway that encodes three frames per chat message, more than the QUIC
stack. Our tables (but SyncResponse's vector of tables) hold only scalars, strings and
byte vectors, so a table is written here in one pass with ``struct`` and read back with
bounds-checked ``unpack_from``: the bytes are standard FlatBuffers (any FlatBuffers
reader, including the generated one, reads them; tests check both ways and that every
field spec matches the generated code).

Layout written, front to back: root offset, vtable, table (8-byte fields first, then
4-, 2- and 1-byte ones, each naturally aligned), then strings and vectors. Every offset
points forward, as the spec requires of uoffsets, and the vtable precedes its table.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Literal

from .errors import MalformedFrame

__all__ = ["Field", "Kind", "TableReader", "write_table"]

Kind = Literal["bool", "i8", "u8", "i16", "u16", "i32", "u32", "i64", "u64", "str", "bytes"]

_SCALARS: dict[str, struct.Struct] = {
    "bool": struct.Struct("<?"),
    "i8": struct.Struct("<b"),
    "u8": struct.Struct("<B"),
    "i16": struct.Struct("<h"),
    "u16": struct.Struct("<H"),
    "i32": struct.Struct("<i"),
    "u32": struct.Struct("<I"),
    "i64": struct.Struct("<q"),
    "u64": struct.Struct("<Q"),
}
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")

Field = tuple[int, Kind, "int | bool | str | bytes"]
"""``(slot, kind, value)``; slot is the field's index in the schema table."""


def write_table(fields: Sequence[Field]) -> bytes:
    """One table as a standalone FlatBuffer. Default values (0, False, "", b"") are left
    out, as the FlatBuffers builders do; ``bytes`` vectors start 8-aligned, so one may
    hold a nested FlatBuffer."""
    scalars: list[tuple[int, int, struct.Struct, int | bool]] = []  # (size, slot, packer, v)
    refs: list[tuple[int, bytes, bool]] = []  # (slot, data, is_string)
    top = -1
    for slot, kind, value in fields:
        top = max(top, slot)
        if kind == "str":
            if value:
                refs.append((slot, str(value).encode(), True))
        elif kind == "bytes":
            if value:
                refs.append((slot, bytes(value), False))  # type: ignore[arg-type]
        elif value:
            packer = _SCALARS[kind]
            scalars.append((packer.size, slot, packer, value))  # type: ignore[arg-type]
    scalars.sort(key=lambda item: -item[0])
    vtable_size = 4 + 2 * (top + 1)
    table = 4 + vtable_size
    table += (4 - table) % 8  # table ≡ 4 (mod 8): its 8-byte fields land 8-aligned
    field_at: dict[int, int] = {}
    position = table + 4  # after the soffset to the vtable
    for size, slot, _, _ in scalars[: sum(1 for s in scalars if s[0] == 8)]:
        field_at[slot] = position
        position += size
    for slot, _, _ in refs:  # uoffsets: 4 bytes, aligned since everything before is
        field_at[slot] = position
        position += 4
    for size, slot, _, _ in scalars:
        if size < 8:
            field_at[slot] = position
            position += size
    table_size = position - table
    position += (4 - position) % 4
    blobs: list[tuple[int, bytes, bool]] = []
    for _, data, is_string in refs:
        if not is_string:
            position += (4 - position) % 8  # the data after the length: 8-aligned
        blobs.append((position, data, is_string))
        position += 4 + len(data) + (1 if is_string else 0)
        position += (4 - position) % 4

    out = bytearray(position)
    _U32.pack_into(out, 0, table)
    _U16.pack_into(out, 4, vtable_size)
    _U16.pack_into(out, 6, table_size)
    for slot, at in field_at.items():
        _U16.pack_into(out, 8 + 2 * slot, at - table)
    _I32.pack_into(out, table, table - 4)
    for _, slot, packer, value in scalars:
        packer.pack_into(out, field_at[slot], value)
    for (slot, _, _), (at, data, _) in zip(refs, blobs, strict=True):
        _U32.pack_into(out, field_at[slot], at - field_at[slot])
        _U32.pack_into(out, at, len(data))
        out[at + 4 : at + 4 + len(data)] = data
    return bytes(out)


class TableReader:
    """Fields of the root table of ``buf``, each read with bounds checks: any
    inconsistency raises MalformedFrame (hostile input is expected here)."""

    __slots__ = ("_buf", "_offsets", "_table")

    def __init__(self, buf: bytes | memoryview) -> None:
        size = len(buf)
        try:
            if size < 8:
                raise MalformedFrame("too short for a FlatBuffers table")
            (table,) = _U32.unpack_from(buf, 0)
            (soffset,) = _I32.unpack_from(buf, table)
            vtable = table - soffset
            if vtable < 0:
                raise MalformedFrame("vtable offset runs past the buffer")
            vtable_size, table_size = struct.unpack_from("<HH", buf, vtable)
            if vtable_size < 4 or vtable_size % 2 or vtable + vtable_size > size:
                raise MalformedFrame("vtable size is invalid")
            if table_size < 4 or table + table_size > size:
                raise MalformedFrame("table size is invalid")
            self._offsets: tuple[int, ...] = struct.unpack_from(
                f"<{(vtable_size - 4) // 2}H", buf, vtable + 4
            )
        except struct.error:
            raise MalformedFrame("table offsets run past the buffer") from None
        self._buf = buf
        self._table: int = table

    def _field(self, slot: int) -> int:
        """The field's absolute position, or 0 when absent."""
        offsets = self._offsets
        if slot >= len(offsets) or not offsets[slot]:
            return 0
        return self._table + offsets[slot]

    def scalar(self, slot: int, kind: Kind) -> int:
        at = self._field(slot)
        if not at:
            return 0
        try:
            return int(_SCALARS[kind].unpack_from(self._buf, at)[0])
        except struct.error:
            raise MalformedFrame(f"field {slot} runs past the buffer") from None

    def _vector(self, slot: int) -> tuple[int, int]:
        at = self._field(slot)
        if not at:
            return 0, 0
        try:
            (offset,) = _U32.unpack_from(self._buf, at)
            (length,) = _U32.unpack_from(self._buf, at + offset)
        except struct.error:
            raise MalformedFrame(f"field {slot} runs past the buffer") from None
        start = at + offset + 4
        if start + length > len(self._buf):
            raise MalformedFrame(f"field {slot} runs past the buffer")
        return start, length

    def string(self, slot: int) -> str:
        start, length = self._vector(slot)
        try:
            return str(self._buf[start : start + length], "utf-8")
        except UnicodeDecodeError:
            raise MalformedFrame(f"field {slot} is not UTF-8") from None

    def bytes_view(self, slot: int) -> memoryview:
        start, length = self._vector(slot)
        return memoryview(self._buf)[start : start + length]
