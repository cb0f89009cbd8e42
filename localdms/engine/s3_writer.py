"""Writing one table's LOAD files to S3 in bounded memory.

Data arrives as row-aligned chunks of COPY output. The writer buffers up to one part, then hands
the part to a worker thread for ``upload_part`` while reading goes on; at most
``MAX_PARTS_IN_FLIGHT`` parts per file are uploading at once, and a run-wide semaphore caps parts
in flight across all tables, so memory stays bounded whatever the table size.

A file rolls over to the next name (``LOAD00000001`` → ``LOAD00000002``) at the first row end
past ``MaxFileSize`` KB of CSV (measured before compression; a row is never split).
A file smaller than one part is written with a single ``put_object``. Nothing is visible in the
bucket before a file is complete; ``abort`` removes every file this load wrote, so a failed load
never leaves files that look complete.
"""

from __future__ import annotations

import asyncio
import zlib
from dataclasses import dataclass, field
from typing import Any

from dms_spec.s3_layout import load_file_name

PART_SIZE = 8 * 1024 * 1024
MAX_PARTS_IN_FLIGHT = 4

CHECKSUM_ALGORITHM = "CRC32"
"""Declared on every multipart upload and part, as boto3's transfer manager (s3transfer, behind
``aws s3 cp``) declares it: S3 checks each part's CRC32 and keeps a composite checksum of the
object. An upload that declares none gets a CRC64NVME of the whole object computed at
completion; moto computes that in Python: completing a 192 MiB object took 1.3 s, against 0.7 s
with CRC32."""


def start_multipart(s3: Any, bucket: str, key: str) -> str:
    """Start a multipart upload that declares ``CHECKSUM_ALGORITHM``; return its UploadId."""
    response = s3.create_multipart_upload(
        Bucket=bucket, Key=key, ChecksumAlgorithm=CHECKSUM_ALGORITHM
    )
    return str(response["UploadId"])


def send_part(
    s3: Any, bucket: str, key: str, upload_id: str, number: int, body: bytes
) -> dict[str, Any]:
    """Upload one part with its CRC32; return the part as CompleteMultipartUpload lists it."""
    response = s3.upload_part(
        Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body,
        ChecksumAlgorithm=CHECKSUM_ALGORITHM,
    )  # fmt: skip
    return {
        "PartNumber": number,
        "ETag": response["ETag"],
        "ChecksumCRC32": response["ChecksumCRC32"],
    }


def row_end_after(chunk: bytes, offset: int, row_end: bytes) -> int:
    r"""The end of the first row that ends at or after ``offset`` (outside quotes), or len(chunk).

    Example:
        >>> row_end_after(b'1,"a\nb"\n2,c\n', 3, b"\n")
        8
    """
    position = chunk.find(row_end, max(offset - len(row_end) + 1, 0))
    while position != -1:
        if chunk.count(b'"', 0, position) % 2 == 0:
            return position + len(row_end)
        position = chunk.find(row_end, position + 1)
    return len(chunk)


def delete_prefix(s3: Any, bucket: str, prefix: str) -> int:
    """Delete every object under ``prefix``; return how many."""
    deleted = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
            deleted += len(keys)
    return deleted


@dataclass
class _ObjectUpload:
    key: str
    compressor: Any = None
    buffer: list[bytes] = field(default_factory=list)
    buffered: int = 0
    written: int = 0
    upload_id: str | None = None
    parts_started: int = 0
    parts: list[dict[str, Any]] = field(default_factory=list)
    pending: list[asyncio.Task[None]] = field(default_factory=list)


class LoadFileWriter:
    """Streams one table's CSV into ``prefix/LOAD%08X.ext`` objects.

    Args:
        s3: a boto3 S3 client (thread-safe; calls run in worker threads).
        bucket: the target bucket.
        prefix: ``[folder/]schema/table/``.
        extension: ``.csv`` or ``.csv.gz`` (the latter compresses with gzip).
        max_file_bytes: roll over to a new file past this many CSV bytes.
        header: bytes written at the start of every file (AddColumnName), or ``b""``.
        upload_slots: run-wide cap on parts being uploaded at once.
        part_size: multipart part size.
        row_end: the row delimiter, where a file may be cut.
    """

    def __init__(
        self,
        s3: Any,
        bucket: str,
        prefix: str,
        extension: str,
        max_file_bytes: int,
        header: bytes,
        upload_slots: asyncio.Semaphore,
        part_size: int = PART_SIZE,
        row_end: bytes = b"\n",
    ) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.prefix = prefix
        self.extension = extension
        self.max_file_bytes = max_file_bytes
        self.header = header
        self.upload_slots = upload_slots
        self.part_size = part_size
        self.row_end = row_end
        self.keys: list[str] = []
        self.bytes_written = 0
        self._current: _ObjectUpload | None = None

    async def write(self, chunk: bytes) -> None:
        """Append a row-aligned chunk, rolling over and uploading parts as needed."""
        while chunk:
            current = self._current or self._open_next()
            room = self.max_file_bytes - current.written
            cut = len(chunk) if room >= len(chunk) else row_end_after(chunk, room, self.row_end)
            piece, chunk = chunk[:cut], chunk[cut:]
            current.written += len(piece)
            self.bytes_written += len(piece)
            self._append(current, piece)
            if current.buffered >= self.part_size:
                await self._ship_part(current, final=False)
            if current.written >= self.max_file_bytes:
                await self._finish(current)

    async def close(self) -> list[str]:
        """Finish the last file; return every key written (none for an empty table)."""
        if self._current is not None:
            await self._finish(self._current)
        return list(self.keys)

    async def abort(self) -> None:
        """Stop uploads and remove everything this load wrote."""
        current, self._current = self._current, None
        if current is not None:
            for task in current.pending:
                task.cancel()
            await asyncio.gather(*current.pending, return_exceptions=True)
            if current.upload_id is not None:
                await asyncio.to_thread(
                    self.s3.abort_multipart_upload,
                    Bucket=self.bucket,
                    Key=current.key,
                    UploadId=current.upload_id,
                )
        for key in self.keys:
            await asyncio.to_thread(self.s3.delete_object, Bucket=self.bucket, Key=key)
        self.keys.clear()

    def _open_next(self) -> _ObjectUpload:
        key = self.prefix + load_file_name(len(self.keys) + 1, self.extension)
        compressor = (
            zlib.compressobj(6, zlib.DEFLATED, 31) if self.extension.endswith(".gz") else None
        )
        upload = _ObjectUpload(key=key, compressor=compressor)
        self._current = upload
        if self.header:
            self._append(upload, self.header)
        return upload

    @staticmethod
    def _append(upload: _ObjectUpload, data: bytes) -> None:
        """Buffer output bytes (compressed as they come, so parts are sized on what is sent)."""
        if upload.compressor is not None:
            data = upload.compressor.compress(data)
        if data:
            upload.buffer.append(data)
            upload.buffered += len(data)

    async def _take_buffer(self, upload: _ObjectUpload, final: bool) -> bytes:
        if final and upload.compressor is not None:
            upload.buffer.append(upload.compressor.flush())
        data = b"".join(upload.buffer)
        upload.buffer.clear()
        upload.buffered = 0
        return data

    async def _ship_part(self, upload: _ObjectUpload, final: bool) -> None:
        data = await self._take_buffer(upload, final)
        if upload.upload_id is None:
            upload.upload_id = await asyncio.to_thread(
                start_multipart, self.s3, self.bucket, upload.key
            )
        upload.parts_started += 1
        part_number = upload.parts_started
        while len(upload.pending) >= MAX_PARTS_IN_FLIGHT:
            await upload.pending.pop(0)
        await self.upload_slots.acquire()
        upload.pending.append(asyncio.create_task(self._upload_part(upload, part_number, data)))

    async def _upload_part(self, upload: _ObjectUpload, part_number: int, data: bytes) -> None:
        assert upload.upload_id is not None
        try:
            upload.parts.append(
                await asyncio.to_thread(
                    send_part, self.s3, self.bucket, upload.key, upload.upload_id, part_number, data
                )
            )
        finally:
            self.upload_slots.release()

    async def _finish(self, upload: _ObjectUpload) -> None:
        if upload.upload_id is None:
            data = await self._take_buffer(upload, final=True)
            await asyncio.to_thread(
                self.s3.put_object, Bucket=self.bucket, Key=upload.key, Body=data
            )
        else:
            if upload.buffered or upload.compressor is not None:
                await self._ship_part(upload, final=True)
            while upload.pending:
                await upload.pending.pop(0)
            parts = sorted(upload.parts, key=lambda part: int(part["PartNumber"]))
            await asyncio.to_thread(
                self.s3.complete_multipart_upload,
                Bucket=self.bucket,
                Key=upload.key,
                UploadId=upload.upload_id,
                MultipartUpload={"Parts": parts},
            )
        self.keys.append(upload.key)
        self._current = None
