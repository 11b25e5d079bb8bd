"""Known third-party noise, silenced where it is made (scoped, never global).

Each entry names a message vecpg's users cannot act on: brax's notice that its envs are
unmaintained (vecpg's env layer is adapter-based, with MuJoCo Playground next to it),
MuJoCo's deprecation of fields brax reads, JAXopt's end-of-life notice (a brax
dependency), and the "Failed to import warp" lines MJX prints when the optional warp
backend is absent. Any other warning or output passes through.
"""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Iterator

from vecpg.output import LineFilter

KNOWN_WARNINGS: tuple[tuple[str, type[Warning]], ...] = (
    ("Brax System, piplines and environments are not actively being maintained", UserWarning),
    ("Accessing `[a-z_]+` directly from `Data` is deprecated", DeprecationWarning),
    ("JAXopt is no longer maintained", DeprecationWarning),
)
KNOWN_PRINTS = ("Failed to import warp:", "Failed to import mujoco_warp:")


@contextlib.contextmanager
def third_party_quiet() -> Iterator[None]:
    """Silence KNOWN_WARNINGS and KNOWN_PRINTS while env code is imported, built or
    traced."""
    with warnings.catch_warnings():
        for message, category in KNOWN_WARNINGS:
            warnings.filterwarnings("ignore", message=message, category=category)
        out = LineFilter(sys.stdout, lambda line: not line.startswith(KNOWN_PRINTS))
        with contextlib.redirect_stdout(out):
            try:
                yield
            finally:
                out.flush()
