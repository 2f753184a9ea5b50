"""Uploaded app icons (SPEC §2 ``icon``; issue 3 item 4): read an upload, judge it, and make the
48x48 rendition clients show.

An upload is untrusted bytes. Each defence bounds time and memory before the next, costlier step
runs:

1. **Size while streaming.** ``read_upload`` stops after ``MAX_ICON_BYTES + 1`` bytes, so an
   oversized upload is never held whole in memory; ``process_icon`` checks the size again.
2. **Magic bytes.** The format is the file's signature (PNG, ``GIF87a``/``GIF89a``, JPEG SOI),
   never its name or declared media type. Pillow is then allowed that one format only.
3. **Structure walk.** Before Pillow parses anything, a short pass over the PNG chunks (CRCs
   included), GIF blocks or JPEG segments reads the declared dimensions and frame count, refuses
   oversized ones (a GIF declaring 65535x65535 costs nothing), checks every frame of an
   animation, not only the first (issue 11 item 5: each GIF image descriptor and each APNG fcTL
   must lie inside the canvas, each image a JPEG's MP index lists, which Pillow opens as MPO
   frames, within the caps; the frame count and the pixels summed over all frames are capped;
   APNG's acTL, sequence numbers and frame count must agree), and caps how many chunks, blocks
   and segments Pillow's pure-Python parsers will loop over and how far PNG metadata (zTXt, iTXt,
   iCCP) inflates. Pillow alone keeps each text chunk under ``PngImagePlugin.MAX_TEXT_CHUNK``
   (1 MiB; its ``ValueError`` stays a backstop here) but allows 64 MiB across chunks, and keeps
   every GIF comment sub-block and JPEG comment segment: measured on Pillow 13, a 1 MiB file
   made it hold 66 MiB (many zTXt chunks), 45 MiB (a GIF comment in 1-byte sub-blocks) or 16 MiB
   (JPEG COM segments).
4. **Caps before decoding.** ``Image.open`` reads headers only; its size is checked against the
   caps again before ``load()``, so a decoded frame is at most 2048x2048 RGBA (16 MiB), about
   twice that while LANCZOS resamples a premultiplied copy (measured: 32 MiB and 0.1 s for a
   2048x2048 RGBA PNG). JPEG is decoded at a reduced DCT scale (``draft``), as only the 48x48
   rendition needs pixels.
5. **Full decode.** The first frame is decoded completely, so a truncated or corrupt file is
   refused now instead of being stored and served broken; everything Pillow, zlib or libjpeg
   raises on bad data becomes ``ICON_UNREADABLE``.

No Pillow setting is changed (``Image.MAX_IMAGE_PIXELS``, ``PngImagePlugin.MAX_TEXT_CHUNK`` and
``MAX_TEXT_MEMORY``, ``ImageFile.LOAD_TRUNCATED_IMAGES`` keep their values) and nothing here holds
state, so ``process_icon`` may run in a worker thread; being CPU-bound (up to about 0.1 s), it
should.

Every refusal is an ``InvalidInput`` with one field error whose code is one of ``ICON_TOO_LARGE``,
``ICON_FORMAT``, ``ICON_DIMENSIONS``, ``ICON_FRAMES`` or ``ICON_UNREADABLE``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from io import BytesIO
from typing import Protocol

from PIL import Image, UnidentifiedImageError

from resolvers.errors import InvalidInput

MAX_ICON_BYTES = 1024 * 1024
"""Largest accepted upload, in bytes (SPEC §2: at most 1 MiB)."""
MAX_ICON_WIDTH = 2048
MAX_ICON_HEIGHT = 2048
MAX_ICON_PIXELS = MAX_ICON_WIDTH * MAX_ICON_HEIGHT
"""Caps on declared dimensions, in pixels: over 40 times the recommended 48 px, so any real icon
or logo fits, while a decoded frame stays within 16 MiB."""
MAX_ICON_FRAMES = 64
"""Most frames in an animation (GIF, or APNG by its acTL chunk); only the first is shown, the
rest are stored and served as uploaded."""
MAX_ANIMATION_PIXELS = 4 * MAX_ICON_PIXELS
"""Most pixels across all frames of an animation, summed over each frame's own rectangle:
16,777,216, that is 64 frames of 512x512 or 4 of 2048x2048 (issue 11 item 5). A decoder that
iterates frames decodes each at most once, so this bounds its work as ``MAX_ICON_PIXELS`` bounds
the first frame's."""
MAX_PNG_UINT = 2**31 - 1
"""Largest value of a PNG four-byte unsigned integer (ISO/IEC 15948 §7.1), acTL plays included."""
RENDITION_SIZE = 48
"""Side of the square PNG rendition, in pixels (SPEC §2's recommended icon size)."""
READ_CHUNK = 64 * 1024

# Structure caps (defence 3). Real files stay far below them: a 1 MiB PNG written by libpng has
# about 130 chunks, a GIF about 4,100 sub-blocks of 255 bytes, a JPEG some 20 segments before
# its first scan and about 10 scans when progressive.
MAX_PNG_CHUNKS = 4096
MAX_PNG_METADATA_BYTES = 1024 * 1024
MAX_GIF_BLOCKS = 16384
MAX_JPEG_SEGMENTS = 256
MAX_JPEG_SCANS = 64

ICON_TOO_LARGE = "ICON_TOO_LARGE"
ICON_FORMAT = "ICON_FORMAT"
ICON_DIMENSIONS = "ICON_DIMENSIONS"
ICON_FRAMES = "ICON_FRAMES"
ICON_UNREADABLE = "ICON_UNREADABLE"

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
GIF_SIGNATURES = (b"GIF87a", b"GIF89a")
JPEG_SIGNATURE = b"\xff\xd8\xff"

# What Pillow, zlib and libjpeg raise on bad data (Pillow's "Decompressed data too large" and
# "Too much memory used in text chunks" are ValueErrors; UnidentifiedImageError is an OSError).
_DECODE_ERRORS = (
    Image.DecompressionBombError,
    UnidentifiedImageError,
    OSError,
    ValueError,
    SyntaxError,
    EOFError,
    struct.error,
    zlib.error,
)


class AsyncReader(Protocol):
    """Something read in chunks, like Starlette's ``UploadFile``: ``read(n)`` returns at most
    ``n`` bytes, and ``b""`` at the end; ``seek(0)`` goes back to the start."""

    async def read(self, size: int, /) -> bytes:
        """Up to ``size`` bytes; ``b""`` at the end of the stream."""
        ...

    async def seek(self, offset: int, /) -> None:
        """Move to byte ``offset`` from the start."""
        ...


@dataclass(frozen=True, slots=True)
class ProcessedIcon:
    """An accepted icon (SPEC §2), ready to store as ``storage.models.IconImage``.

    ``id`` is the hex SHA-256 of ``original`` (64 lowercase characters), so the same bytes always
    give the same icon; ``media_type`` is ``image/png``, ``image/gif`` or ``image/jpeg`` as judged
    by content; ``width`` and ``height`` are the declared size in pixels; ``original`` is the
    upload exactly as received; ``rendition_48`` an RGBA PNG of exactly 48x48 pixels: the first
    frame fitted inside, aspect ratio kept, centred on transparency.
    """

    id: str
    media_type: str
    width: int
    height: int
    original: bytes = dataclasses.field(repr=False)
    rendition_48: bytes = dataclasses.field(repr=False)


async def read_upload(
    upload: AsyncReader, limit: int = MAX_ICON_BYTES, field: str = "icon"
) -> bytes:
    """The whole upload, read ``READ_CHUNK`` (64 KiB) at a time (SPEC §2; issue 3 item 4).

    Raises ``InvalidInput`` (code ``ICON_TOO_LARGE``, on ``field``) as soon as more than
    ``limit`` bytes have arrived: at most ``limit + 1`` bytes are ever read or held, whatever the
    upload's real size. Reading starts at the beginning of the upload, so one file that a
    multipart request maps to several variables is read whole by each use.
    """
    await upload.seek(0)
    chunks: list[bytes] = []
    total = 0
    while True:
        chunk = await upload.read(min(READ_CHUNK, limit + 1 - total))
        if not chunk:
            return b"".join(chunks)
        total += len(chunk)
        if total > limit:
            raise InvalidInput.single(field, _too_large(limit), ICON_TOO_LARGE)
        chunks.append(chunk)


def process_icon(data: bytes, field: str = "icon") -> ProcessedIcon:
    """Judge an uploaded icon and make its 48x48 rendition (SPEC §2 ``icon``; issue 3 item 4).

    Accepts GIF, JPEG and PNG recognised by their magic bytes, at most ``MAX_ICON_BYTES``, at
    most ``MAX_ICON_WIDTH`` x ``MAX_ICON_HEIGHT`` pixels, animations (GIF, APNG, MPO) of at most
    ``MAX_ICON_FRAMES`` frames and ``MAX_ANIMATION_PIXELS`` pixels in all, each frame inside
    the canvas, and only files whose first frame decodes completely. Raises ``InvalidInput``
    with one error on ``field`` and code ``ICON_TOO_LARGE``, ``ICON_FORMAT``, ``ICON_DIMENSIONS``,
    ``ICON_FRAMES`` or ``ICON_UNREADABLE``: the size is judged first, then the magic bytes, then
    the structure with its declared dimensions and frames, and last the decoded pixels (the
    module docstring says why). CPU-bound: call it from a worker thread.
    """
    try:
        return _process(data)
    except _Refusal as refusal:
        raise InvalidInput.single(field, refusal.message, refusal.code) from refusal.__cause__


class _Refusal(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class _Layout:
    """What a file's structure declares, read without decoding: first-frame size, frames."""

    width: int
    height: int
    frames: int = 1


@dataclass(frozen=True, slots=True)
class _Format:
    name: str
    media_type: str
    walk: Callable[[bytes], _Layout]


def _process(data: bytes) -> ProcessedIcon:
    if len(data) > MAX_ICON_BYTES:
        raise _Refusal(ICON_TOO_LARGE, _too_large(MAX_ICON_BYTES))
    kind = _sniff(data)
    layout = kind.walk(data)
    _check_size(layout.width, layout.height)
    if layout.frames > MAX_ICON_FRAMES:
        raise _Refusal(ICON_FRAMES, _too_many_frames(kind.name, layout.frames))
    try:
        with Image.open(BytesIO(data), formats=[kind.name]) as image:
            width, height = image.size
            _check_size(width, height)
            frames = int(getattr(image, "n_frames", 1))
            if frames > MAX_ICON_FRAMES:
                raise _Refusal(ICON_FRAMES, _too_many_frames(kind.name, frames))
            image.draft(None, (RENDITION_SIZE, RENDITION_SIZE))
            image.load()
            rendition = _rendition(image)
    except _DECODE_ERRORS as error:
        raise _Refusal(
            ICON_UNREADABLE, f"is a damaged or truncated {kind.name} file that cannot be decoded"
        ) from error
    return ProcessedIcon(
        id=hashlib.sha256(data).hexdigest(),
        media_type=kind.media_type,
        width=width,
        height=height,
        original=data,
        rendition_48=rendition,
    )


def _too_large(limit: int) -> str:
    return f"must be at most {_amount(limit)}"


def _amount(size: int) -> str:
    mib, rest = divmod(size, 1024 * 1024)
    return f"{mib} MiB" if mib and not rest else f"{size} bytes"


def _too_many_frames(kind: str, frames: int) -> str:
    return f"must have at most {MAX_ICON_FRAMES} frames; this {kind} has {frames} or more"


class _Frames:
    """An animation's frames as its structure walk meets them (issue 11 item 5): each must lie
    inside the ``width`` x ``height`` canvas, and their pixels, summed, stay within
    ``MAX_ANIMATION_PIXELS``. Frames are numbered from 1, the first shown."""

    def __init__(self, kind: str, width: int, height: int) -> None:
        self.kind = kind
        self.width = width
        self.height = height
        self.count = 0
        self.pixels = 0

    def add(self, left: int, top: int, width: int, height: int) -> None:
        """Count one more frame of ``width`` x ``height`` at ``(left, top)``; raises
        ``_Refusal`` (``ICON_DIMENSIONS`` or ``ICON_FRAMES``) when it breaks a rule."""
        self.count += 1
        if left + width > self.width or top + height > self.height:
            raise _Refusal(
                ICON_DIMENSIONS,
                f"has a frame outside its {self.width}x{self.height} canvas: frame {self.count} "
                f"covers {width}x{height} pixels at ({left}, {top})",
            )
        self.pixels += width * height
        if self.pixels > MAX_ANIMATION_PIXELS:
            raise _Refusal(
                ICON_FRAMES,
                f"must have at most {MAX_ANIMATION_PIXELS} pixels across its frames; "
                f"this {self.kind} has {self.pixels} or more",
            )


def _unreadable(kind: str, problem: str) -> _Refusal:
    return _Refusal(ICON_UNREADABLE, f"is not a readable {kind} file: {problem}")


def _check_size(width: int, height: int) -> None:
    if width < 1 or height < 1:
        raise _Refusal(ICON_DIMENSIONS, f"has no pixels (it declares {width}x{height})")
    if width > MAX_ICON_WIDTH or height > MAX_ICON_HEIGHT or width * height > MAX_ICON_PIXELS:
        raise _Refusal(
            ICON_DIMENSIONS,
            f"must be at most {MAX_ICON_WIDTH}x{MAX_ICON_HEIGHT} pixels; "
            f"it declares {width}x{height}",
        )


def _sniff(data: bytes) -> _Format:
    if data.startswith(PNG_SIGNATURE):
        return _Format("PNG", "image/png", _png_layout)
    if data.startswith(GIF_SIGNATURES):
        return _Format("GIF", "image/gif", _gif_layout)
    if data.startswith(JPEG_SIGNATURE):
        return _Format("JPEG", "image/jpeg", _jpeg_layout)
    raise _Refusal(
        ICON_FORMAT, "must be a GIF, JPEG or PNG image (judged by its content, not its file name)"
    )


def _png_layout(data: bytes) -> _Layout:
    """PNG (ISO/IEC 15948): signature, then chunks of length, type, data and CRC up to IEND.
    CRCs are checked here because Pillow skips those of image data (IDAT); animation chunks
    (APNG) are checked by ``_Apng``."""
    pos = len(PNG_SIGNATURE)
    chunks = 0
    inflated = 0
    width = height = 0
    animation = _Apng(0, 0)
    while True:
        if pos + 12 > len(data):
            raise _unreadable("PNG", "it ends before its IEND chunk (truncated)")
        length, kind = struct.unpack_from(">I4s", data, pos)
        start, end = pos + 8, pos + 8 + length
        name = f"{kind.decode()} chunk" if kind.isalpha() else f"chunk of type 0x{kind.hex()}"
        if end + 4 > len(data):
            raise _unreadable("PNG", f"its {name} is cut short (truncated)")
        if zlib.crc32(memoryview(data)[pos + 4 : end]) != struct.unpack_from(">I", data, end)[0]:
            raise _unreadable("PNG", f"its {name} fails its CRC check (damaged)")
        chunks += 1
        if chunks > MAX_PNG_CHUNKS:
            raise _unreadable("PNG", f"it has more than {MAX_PNG_CHUNKS} chunks")
        if chunks == 1:
            if kind != b"IHDR" or length < 8:
                raise _unreadable("PNG", "it does not start with an IHDR chunk")
            width, height = struct.unpack_from(">II", data, start)
            animation = _Apng(width, height)
        elif kind in _APNG_CHUNKS:
            animation.read(kind, memoryview(data)[start:end])
        elif kind in (b"zTXt", b"iTXt", b"iCCP"):
            stream = _png_compressed_stream(data, kind, start, end)
            if stream is not None:
                inflated += _inflated_size(stream, MAX_PNG_METADATA_BYTES - inflated)
                if inflated > MAX_PNG_METADATA_BYTES:
                    raise _unreadable(
                        "PNG",
                        "its metadata (zTXt, iTXt and iCCP chunks) inflates to more than "
                        + _amount(MAX_PNG_METADATA_BYTES),
                    )
        pos = end + 4
        if kind == b"IEND":
            return _Layout(width, height, animation.end())


_APNG_CHUNKS = frozenset({b"IDAT", b"acTL", b"fcTL", b"fdAT"})


class _Apng:
    """The animation of a PNG (APNG 1.0, https://wiki.mozilla.org/APNG_Specification; issue 11
    item 5), fed its ``IDAT``, ``acTL``, ``fcTL`` and ``fdAT`` chunks in file order.

    Its rules: one acTL, before the image data, declaring 1 to ``MAX_ICON_FRAMES`` frames and at
    most ``MAX_PNG_UINT`` plays; fcTL and fdAT only with an acTL, 26 and at least 4 bytes long,
    their sequence numbers 0, 1, 2, ... with neither gap nor repeat; each frame non-empty and
    inside the IHDR canvas (``_Frames``), the first one the whole canvas when it comes before
    the image data (then the IDAT is its data), every later one followed by its fdAT, with a
    known dispose op (0-2) and blend op (0-1); as many fcTL as acTL declares. Pillow checks the
    sequence and the bounds only when a frame is reached, and takes acTL's count as given."""

    def __init__(self, width: int, height: int) -> None:
        self.width = width
        self.height = height
        self.declared: int | None = None
        self.frames = _Frames("PNG", width, height)
        self.sequence = 0
        self.image_data = False
        self.frame_after_image_data = False
        self.awaiting_data = False

    def read(self, kind: bytes, body: memoryview) -> None:
        """Check one chunk; raises ``_Refusal`` when it breaks a rule."""
        if kind == b"IDAT":
            self.image_data = True
        elif kind == b"acTL":
            self._animation_control(body)
        elif self.declared is None:
            raise _unreadable("PNG", f"its {kind.decode()} chunk comes without an acTL chunk")
        elif kind == b"fcTL":
            self._frame_control(body)
        else:
            if len(body) < 4:
                raise _unreadable("PNG", "its fdAT chunk is too short")
            self._next_sequence(kind, struct.unpack_from(">I", body)[0])
            if not self.frame_after_image_data:
                raise _unreadable("PNG", "its fdAT chunk belongs to no frame")
            self.awaiting_data = False

    def end(self) -> int:
        """At IEND: how many frames the file has (1 if it is no animation)."""
        if self.declared is None:
            return 1
        if self.awaiting_data:
            raise _unreadable("PNG", f"frame {self.frames.count} has no image data (fdAT)")
        if self.frames.count != self.declared:
            raise _unreadable(
                "PNG",
                f"its acTL chunk declares {self.declared} frames but it has {self.frames.count}",
            )
        return self.declared

    def _animation_control(self, body: memoryview) -> None:
        if len(body) != 8:
            raise _unreadable("PNG", "its acTL chunk is not 8 bytes long")
        if self.declared is not None or self.image_data:
            raise _unreadable("PNG", "its acTL chunk is repeated or comes after the image data")
        frames, plays = struct.unpack_from(">II", body)
        if frames == 0:
            raise _unreadable("PNG", "its acTL chunk declares 0 frames")
        if frames > MAX_ICON_FRAMES:
            raise _Refusal(
                ICON_FRAMES,
                f"must have at most {MAX_ICON_FRAMES} frames; this PNG declares {frames}",
            )
        if plays > MAX_PNG_UINT:
            raise _unreadable(
                "PNG", f"its acTL chunk declares {plays} plays (at most {MAX_PNG_UINT})"
            )
        self.declared = frames

    def _frame_control(self, body: memoryview) -> None:
        if len(body) != 26:
            raise _unreadable("PNG", "its fcTL chunk is not 26 bytes long")
        sequence, width, height, left, top = struct.unpack_from(">IIIII", body)
        self._next_sequence(b"fcTL", sequence)
        if self.awaiting_data:
            raise _unreadable("PNG", f"frame {self.frames.count} has no image data (fdAT)")
        number = self.frames.count + 1
        if width < 1 or height < 1:
            raise _Refusal(
                ICON_DIMENSIONS,
                f"has an empty frame: frame {number} covers {width}x{height} pixels",
            )
        if not self.image_data and (left, top, width, height) != (0, 0, self.width, self.height):
            raise _unreadable(
                "PNG",
                "its first frame (before the image data) must cover the whole "
                f"{self.width}x{self.height} image",
            )
        dispose, blend = body[24], body[25]
        if dispose > 2 or blend > 1:
            raise _unreadable(
                "PNG",
                f"frame {number} has an unknown dispose op ({dispose}) or blend op ({blend})",
            )
        self.frames.add(left, top, width, height)
        self.frame_after_image_data = self.awaiting_data = self.image_data

    def _next_sequence(self, kind: bytes, sequence: int) -> None:
        if sequence != self.sequence:
            raise _unreadable(
                "PNG",
                f"its {kind.decode()} chunk has sequence number {sequence} "
                f"where {self.sequence} belongs",
            )
        self.sequence += 1


def _png_compressed_stream(data: bytes, kind: bytes, start: int, end: int) -> memoryview | None:
    """The zlib stream in chunk data ``data[start:end]`` that Pillow would inflate, if any."""
    name_end = data.find(b"\0", start, end)
    if name_end < 0 or name_end + 2 > end:
        return None
    if kind != b"iTXt":
        # zTXt and iCCP: name, NUL, compression method, stream.
        return memoryview(data)[name_end + 2 : end]
    # iTXt: keyword, NUL, compressed flag, method, language, NUL, translated keyword, NUL, text.
    if data[name_end + 1] == 0:
        return None
    language_end = data.find(b"\0", name_end + 3, end)
    keyword_end = data.find(b"\0", language_end + 1, end) if language_end >= 0 else -1
    return None if keyword_end < 0 else memoryview(data)[keyword_end + 1 : end]


def _inflated_size(stream: memoryview, budget: int) -> int:
    """How many bytes ``stream`` inflates to, counting no further than ``budget + 1``."""
    try:
        return len(zlib.decompressobj().decompress(stream, budget + 1))
    except zlib.error:
        return 0  # Pillow drops undecodable text, and refuses undecodable profiles itself.


def _gif_layout(data: bytes) -> _Layout:
    """GIF89a: header, logical screen descriptor, optional global colour table, then extension
    blocks (``!``) and images (``,``), each followed by sub-blocks, up to the trailer (``;``).

    Pillow's size is the logical screen grown to the first image's extent; so is this one, the
    canvas every later image must lie inside (Pillow grows it for them too, up to 65535x65535).
    """
    if len(data) < 13:
        raise _unreadable("GIF", "it ends inside its header (truncated)")
    width, height = struct.unpack_from("<HH", data, 6)
    pos = 13 + _colour_table_size(data[10])
    frames = blocks = 0
    canvas = _Frames("GIF", width, height)
    while pos < len(data) and data[pos] != 0x3B:
        introducer = data[pos]
        if introducer == 0x2C:
            frames += 1
            if frames > MAX_ICON_FRAMES:
                return _Layout(width, height, frames)
            if pos + 11 > len(data):
                raise _unreadable("GIF", "it ends inside an image descriptor (truncated)")
            left, top, image_width, image_height = struct.unpack_from("<HHHH", data, pos + 1)
            if frames == 1:
                width = max(width, left + image_width)
                height = max(height, top + image_height)
                _check_size(width, height)
                canvas = _Frames("GIF", width, height)
            canvas.add(left, top, image_width, image_height)
            pos += 11 + _colour_table_size(data[pos + 9])
        elif introducer == 0x21:
            pos += 2
        else:
            # Pillow skips stray bytes one at a time; count them so that it never loops long.
            blocks += 1
            pos += 1
            continue
        while True:
            if pos >= len(data):
                raise _unreadable("GIF", "it ends inside a data block (truncated)")
            blocks += 1
            if blocks > MAX_GIF_BLOCKS:
                raise _unreadable("GIF", f"it has more than {MAX_GIF_BLOCKS} data blocks")
            size = data[pos]
            pos += 1 + size
            if size == 0:
                break
    if frames == 0:
        raise _unreadable("GIF", "it holds no image")
    return _Layout(width, height, frames)


def _colour_table_size(flags: int) -> int:
    return 3 << ((flags & 7) + 1) if flags & 0x80 else 0


# JPEG markers (ITU T.81 Table B.1) that start a frame: SOF0-SOF15 except DHT, JPG and DAC.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD9)})


def _jpeg_layout(data: bytes) -> _Layout:
    """JPEG (ITU T.81): SOI, then segments (``FF``, marker, big-endian length, payload) up to
    the first scan (SOS), whose entropy-coded data libjpeg reads itself. A JPEG whose MP index
    lists more images is an MPO to Pillow, with frames (``_mpo_images``)."""
    width, height, mp_index = _jpeg_image(data, 0)
    if data.count(b"\xff\xda") > MAX_JPEG_SCANS:
        raise _unreadable("JPEG", f"it has more than {MAX_JPEG_SCANS} scans")
    frames = 1 if mp_index is None else _mpo_images(data, *mp_index, width * height)
    return _Layout(width, height, frames)


def _jpeg_image(data: bytes, start: int) -> tuple[int, int, tuple[int, int] | None]:
    """The size of the JPEG image at ``data[start:]``, and where its MP index lies (start and
    end in ``data``: the payload of its last ``APP2`` ``MPF`` segment after those four bytes,
    as Pillow takes it), if it has one."""
    pos = start + 2
    steps = 0
    size: tuple[int, int] | None = None
    mp_index: tuple[int, int] | None = None
    while True:
        if pos + 4 > len(data):
            raise _unreadable("JPEG", "it ends before its image data (truncated)")
        steps += 1
        if data[pos] != 0xFF:
            # Pillow skips stray bytes one at a time; count them so that it never loops long.
            skipped = data.find(b"\xff", pos)
            steps += (len(data) if skipped < 0 else skipped) - pos
            pos = len(data) if skipped < 0 else skipped
        else:
            marker = data[pos + 1]
            pos += 1 if marker == 0xFF else 2
            if marker == 0xD9:
                raise _unreadable("JPEG", "it ends before its image data")
            if marker not in _JPEG_STANDALONE and marker != 0xFF:
                (length,) = struct.unpack_from(">H", data, pos)
                if marker in _JPEG_SOF and length >= 7 and pos + 7 <= len(data):
                    height, width = struct.unpack_from(">HH", data, pos + 3)
                    _check_size(width, height)
                    size = width, height
                if marker == 0xE2 and data.startswith(b"MPF\0", pos + 2):
                    mp_index = pos + 6, min(pos + length, len(data))
                if marker == 0xDA:
                    break
                pos += max(length, 2)
        if steps > MAX_JPEG_SEGMENTS:
            raise _unreadable(
                "JPEG", f"it has more than {MAX_JPEG_SEGMENTS} segments before its image data"
            )
    if size is None:
        raise _unreadable("JPEG", "it has no frame header")
    return *size, mp_index


def _mpo_images(data: bytes, start: int, end: int, pixels: int) -> int:
    """How many images the MP index at ``data[start:end]`` lists (CIPA DC-007, Multi-Picture
    Format; issue 11 item 5), after checking each as Pillow reads it as an MPO frame;
    ``pixels`` are the first image's.

    The index is a TIFF structure: byte order, the offset of an IFD whose tag 0xB001 (a LONG)
    counts the images and whose tag 0xB002 (UNDEFINED) lists 16 bytes per image: attribute,
    size, offset from the index's start (the first image is the file itself), two entry
    numbers. Each further image must be a JPEG inside the file, within ``MAX_ICON_WIDTH`` x
    ``MAX_ICON_HEIGHT``; at most ``MAX_ICON_FRAMES`` images and ``MAX_ANIMATION_PIXELS`` pixels
    in all. Pillow only warns about a malformed index (a log line) and reads the file as a plain
    JPEG; here it is refused."""
    index = memoryview(data)[start:end]
    malformed = _unreadable("JPEG", "its MP index (MPO) is malformed")
    order = {b"MM\0*": ">", b"II*\0": "<"}.get(bytes(index[:4]))
    try:
        if order is None:
            raise malformed
        (ifd,) = struct.unpack_from(order + "I", index, 4)
        (count,) = struct.unpack_from(order + "H", index, ifd)
        tags: dict[int, tuple[int, int, int]] = {
            tag: (kind, number, value)
            for tag, kind, number, value in (
                struct.unpack_from(order + "HHII", index, ifd + 2 + 12 * entry)
                for entry in range(count)
            )
        }
        if tags.get(0xB001, (0, 0, 0))[:2] != (4, 1):
            raise malformed
        images = tags[0xB001][2]
        if images > MAX_ICON_FRAMES:
            raise _Refusal(
                ICON_FRAMES,
                f"must have at most {MAX_ICON_FRAMES} frames; this JPEG declares {images}",
            )
        if images <= 1:
            return 1
        kind, size, offset = tags.get(0xB002, (0, 0, 0))
        if kind != 7 or size < 16 * images or offset + size > len(index):
            raise malformed
        for number in range(1, images):
            (image_offset,) = struct.unpack_from(order + "I", index, offset + 16 * number + 8)
            image = start + image_offset
            if not data.startswith(JPEG_SIGNATURE, image):
                raise _unreadable("JPEG", f"its image {number + 1} (MPO) is not a JPEG")
            width, height, _ = _jpeg_image(data, image)
            pixels += width * height
            if pixels > MAX_ANIMATION_PIXELS:
                raise _Refusal(
                    ICON_FRAMES,
                    f"must have at most {MAX_ANIMATION_PIXELS} pixels across its frames; "
                    f"this JPEG has {pixels} or more",
                )
    except struct.error:
        raise malformed from None
    return images


def _rendition(image: Image.Image) -> bytes:
    """The first frame fitted inside ``RENDITION_SIZE`` squared (LANCZOS, aspect kept), centred
    on a transparent canvas, as an optimised RGBA PNG."""
    if image.mode.startswith("I;16"):
        image = image.point(lambda value: value / 257)  # 16-bit grey to 0..255, not clipped
    rgba = image if image.mode == "RGBA" else image.convert("RGBA")  # no 16 MiB copy for RGBA
    scale = min(RENDITION_SIZE / rgba.width, RENDITION_SIZE / rgba.height)
    fitted = (
        min(RENDITION_SIZE, max(1, round(rgba.width * scale))),
        min(RENDITION_SIZE, max(1, round(rgba.height * scale))),
    )
    if fitted != rgba.size:
        rgba = rgba.resize(fitted, Image.Resampling.LANCZOS)
    canvas = Image.new("RGBA", (RENDITION_SIZE, RENDITION_SIZE), (0, 0, 0, 0))
    canvas.paste(rgba, ((RENDITION_SIZE - fitted[0]) // 2, (RENDITION_SIZE - fitted[1]) // 2))
    out = BytesIO()
    canvas.save(out, format="PNG", optimize=True)
    return out.getvalue()
