"""A text stream that passes only the lines a predicate keeps (for noisy third parties)."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any


class LineFilter(io.TextIOBase):
    """Writes to `out` each complete line for which `keep(line)` holds (flushing it at
    once when `flush_each`); a last unterminated line is judged on `flush`."""

    def __init__(self, out: Any, keep: Callable[[str], bool], flush_each: bool = False):
        self.out, self.keep, self.flush_each, self.pending = out, keep, flush_each, ""

    def write(self, text: str) -> int:
        self.pending += text
        while "\n" in self.pending:
            line, self.pending = self.pending.split("\n", 1)
            if self.keep(line):
                self.out.write(line + "\n")
                if self.flush_each:
                    self.out.flush()
        return len(text)

    def flush(self) -> None:
        if self.pending and self.keep(self.pending):
            self.out.write(self.pending)
        self.pending = ""
        self.out.flush()
