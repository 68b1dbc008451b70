"""Named NFC tags (``fixtures/tags/NAME.toml``): the identifier a reader sees and the NDEF records.

Tests and ``rig tap`` name tags, never raw identifiers, so a bench can swap a physical sticker
for another by editing one file. ``type3`` tags can be emulated (sim field, card emulation);
``type2`` tags are real stickers that only an actuator bench can present.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

import ndef

TAG_TYPES = ("type3", "type2")


class TagError(ValueError):
    """A tag name or file that cannot be used; ``str()`` is the one-line reason."""


@dataclass(frozen=True)
class Tag:
    name: str
    type: str
    identifier: bytes  # IDm of a type 3 tag, UID of a type 2 tag
    description: str = ""
    pmm: bytes = b""
    system_code: bytes = b""
    records: tuple[ndef.Record, ...] = ()
    source: Path | None = None  # the tag's file, which a field service in another process loads

    @property
    def tag_id(self) -> str:
        """The identifier as the firmware reports it (``tag_id``): lower-case hex."""
        return self.identifier.hex()

    @property
    def ndef_message(self) -> bytes:
        return b"".join(ndef.message_encoder(list(self.records))) if self.records else b""


def _hex(file: Path, data: dict, key: str, length: int) -> bytes:
    raw = data.get(key)
    if not isinstance(raw, str):
        raise TagError(f"{file}: {key}: required, {length} bytes in hex")
    try:
        value = bytes.fromhex(raw)
    except ValueError:
        raise TagError(f"{file}: {key}: {raw!r} is not hex") from None
    if len(value) != length:
        raise TagError(f"{file}: {key}: expected {length} bytes, got {len(value)}")
    return value


def _record(file: Path, index: int, data: object) -> ndef.Record:
    where = f"{file}: ndef[{index}]"
    if not isinstance(data, dict):
        raise TagError(f"{where}: expected a table")
    kind = data.get("type")
    try:
        if kind == "uri" and isinstance(data.get("uri"), str):
            return ndef.UriRecord(data["uri"])
        if kind == "text" and isinstance(data.get("text"), str):
            return ndef.TextRecord(data["text"], str(data.get("language", "en")))
    except (ValueError, TypeError) as exc:
        raise TagError(f"{where}: {exc}") from None
    raise TagError(f'{where}: expected type = "uri" with uri, or type = "text" with text; got {data!r}')


def load_tag(file: Path) -> Tag:
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise TagError(f"{file}: cannot read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise TagError(f"{file}: invalid TOML: {exc}") from None
    kind = data.get("type")
    known = {"description", "type", "idm", "pmm", "system_code", "uid", "ndef"}
    if unknown := sorted(set(data) - known):
        raise TagError(f"{file}: unknown key {unknown[0]!r} (known: {', '.join(sorted(known))})")
    ndef_data = data.get("ndef", [])
    if not isinstance(ndef_data, list):
        raise TagError(f"{file}: ndef: expected [[ndef]] tables")
    records = tuple(_record(file, i, r) for i, r in enumerate(ndef_data))
    description = str(data.get("description", ""))
    if kind == "type3":
        return Tag(
            file.stem,
            kind,
            _hex(file, data, "idm", 8),
            description,
            pmm=_hex(file, data, "pmm", 8),
            system_code=_hex(file, data, "system_code", 2),
            records=records,
            source=file,
        )
    if kind == "type2":
        uid = data.get("uid")
        length = len(uid) // 2 if isinstance(uid, str) else 7
        if length not in (4, 7, 10):
            raise TagError(f"{file}: uid: expected 4, 7 or 10 bytes in hex, got {uid!r}")
        return Tag(file.stem, kind, _hex(file, data, "uid", length), description, records=records, source=file)
    raise TagError(f"{file}: type: expected one of {', '.join(TAG_TYPES)}, got {kind!r}")


class TagShelf:
    """The tags of one folder, by name."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def names(self) -> list[str]:
        return sorted(p.stem for p in self.folder.glob("*.toml"))

    def get(self, name: str) -> Tag:
        file = self.folder / f"{name}.toml"
        if "/" in name or not file.is_file():
            known = ", ".join(self.names()) or "none"
            raise TagError(f"no tag named {name!r} in {self.folder} (known: {known})")
        return load_tag(file)
