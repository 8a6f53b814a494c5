"""Reading an HTTP/1.1 chunked body as it arrives, in two ways (the upstream client's body parsers).

    body = ChunkedDecoder()   # the body's bytes, framing removed (JSON answers, held streams)
    body = WireChunks()       # the body as whole chunks, one per read (SSE relayed without decoding)
    body.feed(data, push)     # push(piece) for what `data` completes; MalformedChunk if it is not chunked
    body.done, body.extra     # the terminating chunk (and trailers) seen; bytes came after it

Both take reads split anywhere (a size line, a chunk or the terminator may straddle reads) and
keep what is incomplete until the next read. Pure byte work, no I/O: tested with every split.
"""

from __future__ import annotations

from collections.abc import Callable

MAX_SIZE_LINE = 4096  # a size line (with extensions) longer than this is not chunked encoding
MAX_WIRE_CHUNK = 8 * 1024 * 1024  # a chunk still incomplete at this size is refused (SSE chunks are small)
# chunk-size lines of SSE events and of the last chunk (lowercase hex, as cpp-httplib writes them),
# looked up instead of parsed: `int(line, 16)` was a third of the time spent walking a stream's chunks
_CHUNK_SIZES = {b"%x" % size: size for size in range(4096)}

Push = Callable[[bytes], None]


class MalformedChunk(ValueError):
    """The body is not valid chunked encoding."""


def _size(line: bytes) -> int:
    """The size a chunk-size line announces (extensions ignored)."""
    try:
        size = int(line.split(b";", 1)[0].strip(), 16)
    except ValueError:
        size = -1
    if size < 0:
        raise MalformedChunk("the upstream sent a malformed chunk size")
    return size


class _ChunkReader:
    def __init__(self) -> None:
        self.done = False  # the terminating chunk (and trailers) has been read
        self.extra = False  # bytes came after it
        self._buf = bytearray()  # the incomplete end of the last read

    def _joined(self, data: bytes) -> bytes:
        """`data` after what the last read left incomplete."""
        buf = self._buf
        if not buf:
            return data
        buf += data
        joined = bytes(buf)
        buf.clear()
        return joined


class ChunkedDecoder(_ChunkReader):
    """Chunk data without the framing, pushed as soon as it arrives (a chunk may come in parts)."""

    def __init__(self) -> None:
        super().__init__()
        self._state = 0  # 0 = size line, 1 = data, 2 = CRLF after data, 3 = trailers
        self._remaining = 0  # data bytes left in the current chunk

    def feed(self, data: bytes, push: Push) -> None:
        data = self._joined(data)
        buf = self._buf
        pos, n = 0, len(data)
        while pos < n:
            state = self._state
            if state == 0:  # fast path: a whole chunk in hand (one SSE event per chunk, as a rule)
                end = data.find(b"\r\n", pos)
                if end > pos:
                    size = _CHUNK_SIZES.get(data[pos:end], 0)  # else the general path below decides
                    stop = end + 2 + size
                    if size > 0 and data.startswith(b"\r\n", stop):
                        push(data[end + 2:stop])
                        pos = stop + 2
                        continue
            if state == 1:
                take = min(self._remaining, n - pos)
                push(data[pos:pos + take] if take != n else data)
                pos += take
                self._remaining -= take
                if self._remaining == 0:
                    self._state = 2
                continue
            end = data.find(b"\r\n", pos)
            if end < 0:
                if n - pos > MAX_SIZE_LINE:
                    raise MalformedChunk("the upstream sent a malformed chunked body")
                buf += data[pos:]
                return
            line = data[pos:end]
            pos = end + 2
            if state == 0:
                size = _size(line)
                if size == 0:
                    self._state = 3
                else:
                    self._remaining = size
                    self._state = 1
            elif state == 2:
                if line:
                    raise MalformedChunk("the upstream sent a malformed chunked body")
                self._state = 0
            elif not line:  # state 3: the empty line after the (ignored) trailers
                self.done = True
                self.extra = pos < n
                return


class WireChunks(_ChunkReader):
    """The chunked body as it came over the wire, whole chunks at a time: a read's complete chunks
    are pushed as one piece, the read itself (no copy) when it holds one chunk, else one chunk
    carrying all their data, as nginx re-frames them: the events are the same bytes in the same
    order, and the client parses one chunk where the upstream wrote many. An incomplete chunk
    waits for the rest, so every piece ends on a chunk boundary and a proxy can still append a
    chunk of its own (an error event) after any of them. The terminating chunk (and trailers) is
    pushed too, and ends it."""

    def one_chunk(self, data: bytes) -> bool:
        """Whether `data` is exactly one whole chunk, not the last, with nothing pending from an
        earlier read: then `feed` would push it as it is and keep no state, so a relay may pass it
        on without feeding it (one SSE event per read, as a rule)."""
        if self._buf:
            return False
        end = data.find(b"\r\n", 0, 8)
        size = _CHUNK_SIZES.get(data[:end], 0) if end > 0 else 0
        return size > 0 and len(data) == end + size + 4 and data.endswith(b"\r\n")

    def feed(self, data: bytes, push: Push) -> None:
        data = self._joined(data)
        pos, n, find, known = 0, len(data), data.find, _CHUNK_SIZES.get
        parts: list[bytes] = []  # the data of the whole chunks so far (from the second chunk on)
        first = 0  # where the first whole chunk's data starts
        total = 0  # their data's length
        while pos < n:
            end = find(b"\r\n", pos)
            if end < 0:
                if n - pos > MAX_SIZE_LINE:
                    raise MalformedChunk("the upstream sent a malformed chunked body")
                break
            line = data[pos:end]
            size = known(line, -1)
            if size < 0:
                size = _size(line)
            if size == 0:  # the last chunk: trailers (usually none) up to an empty line
                stop = end + 4 if data.startswith(b"\r\n", end + 2) else data.find(b"\r\n\r\n", end) + 4
                if stop < 4:
                    break
                if pos == 0:
                    push(data[:stop] if stop < n else data)
                else:
                    push(_merged(data, pos, first, parts, total) + data[pos:stop])
                self.done = True
                self.extra = stop < n
                return
            stop = end + 2 + size
            if stop + 2 > n:
                if stop - pos > MAX_WIRE_CHUNK:
                    raise MalformedChunk(f"the upstream sent a chunk over {MAX_WIRE_CHUNK} bytes")
                break
            if not data.startswith(b"\r\n", stop):
                raise MalformedChunk("the upstream sent a malformed chunked body")
            if pos == 0:
                first = end + 2
            else:
                if not parts:
                    parts.append(data[first:first + total])
                parts.append(data[end + 2:stop])
            total += size
            pos = stop + 2
        if pos:
            push(_merged(data, pos, first, parts, total))
        if pos < n:
            self._buf += data[pos:]


def _merged(data: bytes, pos: int, first: int, parts: list[bytes], total: int) -> bytes:
    """The whole chunks `data[:pos]` as one chunk: as they came when there is one."""
    if not parts:
        return data[:pos] if pos < len(data) else data
    return b"".join([b"%x\r\n" % total, *parts, b"\r\n"])
