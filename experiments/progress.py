"""The progress display of `peel run` and `peel sweep`.

On a terminal, round-by-round and cell-by-cell progress (log records carrying
`extra={"progress": "round" | "cells"}`) share one status line that is rewritten in place,
while every other message is printed above it. When stderr is not a terminal (CI, a pipe, a
log file), every message is a plain line, so nothing depends on cursor control.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

CLEAR_LINE = "\r\x1b[2K"


class ProgressHandler(logging.Handler):
    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__()
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.started = time.monotonic()
        self.parts: dict[str, str] = {}  # "cells", "round" -> latest text

    def _stamp(self) -> str:
        return f"[{time.monotonic() - self.started:6.1f}s]"

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            kind = getattr(record, "progress", None)
            if not self.tty:
                self.stream.write(f"{self._stamp()} {message}\n")
            elif kind:
                self.parts[kind] = message
                self._status()
            else:
                self.stream.write(f"{CLEAR_LINE}{self._stamp()} {message}\n")
                self._status()
            self.stream.flush()
        except Exception:  # a broken terminal must not break a run
            self.handleError(record)

    def _status(self) -> None:
        if self.parts:
            line = " | ".join(self.parts[k] for k in ("cells", "round") if k in self.parts)
            self.stream.write(f"{CLEAR_LINE}{self._stamp()} {line}")

    def close(self) -> None:
        if self.tty and self.parts:
            self.stream.write("\n")
            self.stream.flush()
            self.parts.clear()
        super().close()


def show_progress(stream: TextIO | None = None) -> ProgressHandler:
    """Send Peel's progress (the `peel` logger tree) to stderr through one handler."""
    handler = ProgressHandler(stream)
    logger = logging.getLogger("peel")
    logger.handlers = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return handler
