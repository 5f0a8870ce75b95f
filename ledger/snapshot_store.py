"""Where Parquet snapshots live: a directory or object store, its manifest, its files.

Layout under the snapshot root (a local directory or any pyarrow filesystem URI,
e.g. `s3://bucket/quorum`):

    _quorum_manifest.json                      which files count, up to which sequence
    dataset=<name>/part-<first>-<last>.parquet zstd Parquet, one row per event

The manifest is the commit point. A file is written under a temporary name, renamed
into place, and only then listed in a new manifest (itself written to a temporary
name and renamed). Readers trust the manifest alone, so a writer killed at any point
leaves either the old or the new manifest and, at worst, files nobody lists (orphans),
which the next snapshot run removes. `through_seq` in the manifest is the ledger
position every listed file together covers: each event with a stream sequence up to
it is in exactly one listed file.
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import xxhash

from ledger.columns import EVENT_SCHEMA
from ledger.errors import LedgerError
from ledger.events import now_ms

__all__ = [
    "MANIFEST_NAME",
    "Cut",
    "ForeignSnapshots",
    "Manifest",
    "PartFile",
    "PartWriter",
    "SnapshotStore",
    "SnapshotWriteError",
    "part_name",
]

MANIFEST_NAME = "_quorum_manifest.json"
MANIFEST_FORMAT = 1
_PART = re.compile(r"^part-(\d{20})-(\d{20})\.parquet$")


class ForeignSnapshots(LedgerError):
    """The snapshot directory belongs to another ledger (another EVENTS stream)."""


class SnapshotWriteError(LedgerError):
    """A snapshot file or the manifest could not be written (disk full, no permission…)."""


class PartFile(msgspec.Struct, frozen=True, kw_only=True):
    """One Parquet file as the manifest lists it."""

    path: str
    """Relative to the snapshot root: `dataset=<name>/part-<first>-<last>.parquet`."""
    dataset: str
    first_seq: int
    last_seq: int
    rows: int
    bytes: int
    checksum: str
    """xxh3_128 of the file's bytes, hex."""


class Cut(msgspec.Struct, frozen=True, kw_only=True):
    """A time-travel snapshot: the ledger as it was at a sequence number or a time."""

    to_seq: int | None = None
    until_ms: int | None = None


class Manifest(msgspec.Struct, kw_only=True):
    """What a snapshot root holds: the ledger it came from and the files that count."""

    format: int = MANIFEST_FORMAT
    ledger_id: str
    through_seq: int = 0
    cut: Cut | None = None
    files: list[PartFile] = msgspec.field(default_factory=list)
    updated_at: int = 0

    def dataset_files(self, dataset: str) -> list[PartFile]:
        return [f for f in self.files if f.dataset == dataset]

    def datasets(self) -> list[str]:
        return sorted({f.dataset for f in self.files})


def part_name(dataset: str, first_seq: int, last_seq: int) -> str:
    """The relative path of a part: sequence numbers zero-padded so names sort."""
    return f"dataset={dataset}/part-{first_seq:020d}-{last_seq:020d}.parquet"


def _hex(data: bytes) -> str:
    return xxhash.xxh3_128_hexdigest(data)


class SnapshotStore:
    """A snapshot root on a pyarrow filesystem (local paths need no URI scheme)."""

    def __init__(self, location: str | Path) -> None:
        text = str(location)
        self.location = text
        if "://" in text and not text.startswith("file://"):
            self.fs, self.root = pafs.FileSystem.from_uri(text)
            self.local = False
        else:
            path = Path(text.removeprefix("file://")).absolute()
            self.fs, self.root = pafs.LocalFileSystem(), str(path)
            self.local = True

    def _full(self, relative: str) -> str:
        return f"{self.root}/{relative}"

    def _info(self, relative: str) -> pafs.FileInfo:
        return self.fs.get_file_info(self._full(relative))

    def exists(self) -> bool:
        """Whether the root exists; a file where the directory should be is an error."""
        kind = self.fs.get_file_info(self.root).type
        if kind == pafs.FileType.File:
            raise SnapshotWriteError(
                f"could not write snapshots to {self.location}: it is a file, not a directory"
            )
        return bool(kind != pafs.FileType.NotFound)

    # -- the manifest ---------------------------------------------------------------

    def read_manifest(self) -> Manifest | None:
        """The manifest, or None for a root that holds no snapshots yet."""
        info = self._info(MANIFEST_NAME)
        if info.type == pafs.FileType.NotFound:
            return None
        try:
            with self.fs.open_input_stream(self._full(MANIFEST_NAME)) as stream:
                return msgspec.json.decode(stream.read(), type=Manifest)
        except (OSError, msgspec.DecodeError) as exc:
            raise LedgerError(
                f"the snapshot manifest {self._full(MANIFEST_NAME)} is unreadable ({exc}); "
                f"move the directory aside and run `ledger replay` to rebuild it"
            ) from None

    def load(self, ledger_id: str) -> Manifest:
        """The manifest for the ledger `ledger_id`; a fresh one for an empty root."""
        manifest = self.read_manifest()
        if manifest is None:
            if self.exists() and any(self.part_paths()):
                raise ForeignSnapshots(
                    f"{self.location} holds Parquet parts but no {MANIFEST_NAME}: it was not "
                    f"written by `ledger snapshot`; point --snapshot-dir at an empty directory"
                )
            return Manifest(ledger_id=ledger_id)
        if manifest.ledger_id != ledger_id:
            raise ForeignSnapshots(
                f"{self.location} holds snapshots of another ledger ({manifest.ledger_id}, this "
                f"one is {ledger_id}); use another --snapshot-dir, or `ledger import` that "
                f"directory as an archive"
            )
        return manifest

    def write_manifest(self, manifest: Manifest) -> None:
        """Commit `manifest`: written to a temporary name, then renamed over the old one."""
        manifest.updated_at = now_ms()
        data = msgspec.json.format(msgspec.json.encode(manifest), indent=1)
        temporary = f".manifest-{uuid.uuid4().hex}.tmp"
        try:
            self.fs.create_dir(self.root, recursive=True)
            self._write_bytes(temporary, data)
            self.fs.move(self._full(temporary), self._full(MANIFEST_NAME))
        except OSError as exc:
            self._remove_quietly(temporary)
            raise SnapshotWriteError(
                f"could not write the snapshot manifest in {self.location}: {exc}"
            ) from None

    def _write_bytes(self, relative: str, data: bytes) -> None:
        with self.fs.open_output_stream(self._full(relative)) as stream:
            stream.write(data)
        self._sync(relative)

    def _sync(self, relative: str) -> None:
        """fsync a local file, so a rename never points at data still in the page cache."""
        if self.local:
            fd = os.open(self._full(relative), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    # -- part files -----------------------------------------------------------------

    def part_paths(self) -> Iterator[str]:
        """Relative paths of every part and leftover temporary file under the root."""
        if not self.exists():
            return
        selector = pafs.FileSelector(self.root, recursive=True, allow_not_found=True)
        for info in self.fs.get_file_info(selector):
            if info.type != pafs.FileType.File:
                continue
            relative = info.path[len(self.root) :].lstrip("/")
            name = relative.rsplit("/", 1)[-1]
            if (relative.startswith("dataset=") and (_PART.match(name) or name.endswith(".tmp"))) or (
                name.startswith(".manifest-") and name.endswith(".tmp")
            ):
                yield relative

    def remove_orphans(self, manifest: Manifest) -> list[str]:
        """Delete files no manifest lists (left by a writer that was killed); return them."""
        listed = {f.path for f in manifest.files}
        orphans = [p for p in self.part_paths() if p not in listed]
        for path in orphans:
            self._remove_quietly(path)
        return orphans

    def remove(self, paths: list[str]) -> None:
        for path in paths:
            self._remove_quietly(path)

    def _remove_quietly(self, relative: str) -> None:
        with contextlib.suppress(OSError, FileNotFoundError):
            self.fs.delete_file(self._full(relative))

    def writer(self, dataset: str, row_group_rows: int) -> PartWriter:
        return PartWriter(self, dataset, row_group_rows)

    def open_file(self, relative: str) -> pa.NativeFile:
        return self.fs.open_input_file(self._full(relative))

    def checksum(self, relative: str) -> tuple[int, str]:
        """(size, xxh3_128 hex) of a file's bytes."""
        digest = xxhash.xxh3_128()
        size = 0
        with self.fs.open_input_stream(self._full(relative)) as stream:
            while chunk := stream.read(8 * 1024 * 1024):
                digest.update(chunk)
                size += len(chunk)
        return size, digest.hexdigest()

    def file_size(self, relative: str) -> int | None:
        info = self._info(relative)
        return None if info.type == pafs.FileType.NotFound else info.size

    def full_paths(self, files: list[PartFile]) -> list[str]:
        """Paths DuckDB can read (local paths, or the URI for object stores)."""
        if self.local:
            return [self._full(f.path) for f in files]
        base = self.location.rstrip("/")
        return [f"{base}/{f.path}" for f in files]


class PartWriter:
    """One part being written: row groups appended, then renamed into place by `finish`."""

    def __init__(self, store: SnapshotStore, dataset: str, row_group_rows: int) -> None:
        self.store = store
        self.dataset = dataset
        self.row_group_rows = row_group_rows
        self.rows = 0
        self.first_seq: int | None = None
        self.last_seq = 0
        self._temporary = f"dataset={dataset}/.part-{uuid.uuid4().hex}.tmp"
        try:
            store.fs.create_dir(store._full(f"dataset={dataset}"), recursive=True)
            self._stream = store.fs.open_output_stream(store._full(self._temporary))
            self._writer = pq.ParquetWriter(
                self._stream, EVENT_SCHEMA, compression="zstd", write_statistics=["seq", "dataset", "kind"]
            )
        except OSError as exc:
            store._remove_quietly(self._temporary)
            raise SnapshotWriteError(f"could not write snapshots to {store.location}: {exc}") from None

    def write(self, batch: pa.RecordBatch) -> None:
        """Append rows (in sequence order) as row groups of at most `row_group_rows`."""
        if batch.num_rows == 0:
            return
        seqs = batch.column(0)
        if self.first_seq is None:
            self.first_seq = seqs[0].as_py()
        self.last_seq = seqs[-1].as_py()
        try:
            self._writer.write_batch(batch, row_group_size=self.row_group_rows)
        except OSError as exc:
            self.abort()
            raise SnapshotWriteError(f"could not write snapshots to {self.store.location}: {exc}") from None
        self.rows += batch.num_rows

    def finish(self) -> PartFile:
        """Close, checksum and rename the part to its final name; return its entry."""
        assert self.first_seq is not None, "finish() needs at least one row"
        relative = part_name(self.dataset, self.first_seq, self.last_seq)
        try:
            self._writer.close()
            self._stream.close()
            self.store._sync(self._temporary)
            size, checksum = self.store.checksum(self._temporary)
            self.store.fs.move(self.store._full(self._temporary), self.store._full(relative))
        except OSError as exc:
            self.abort()
            raise SnapshotWriteError(f"could not write snapshots to {self.store.location}: {exc}") from None
        return PartFile(
            path=relative,
            dataset=self.dataset,
            first_seq=self.first_seq,
            last_seq=self.last_seq,
            rows=self.rows,
            bytes=size,
            checksum=checksum,
        )

    def abort(self) -> None:
        """Drop the temporary file; nothing of this part becomes visible."""
        for closing in (self._writer.close, self._stream.close):
            with contextlib.suppress(Exception):
                closing()
        self.store._remove_quietly(self._temporary)
