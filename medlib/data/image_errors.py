"""The one-line errors for an image file that an index file lists: missing, unreadable, too large to decode.

Used by the in-process reader (:func:`medlib.data.decode.read_image`) and the pooled decoder
(:mod:`medlib.data.decode`), so an image fails with the same line in this process and in a pool worker.
Each names the image, where the index file lists it (e.g. ``pairs.csv line 5``, ``dataset_flickr30k.json
images[3] (x.jpg)``) and the fix.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..errors import MedlibError, fail

#: The longest side a refused image is asked to be brought down to (a 224 px model never needs more).
DOWNSCALE_TO = 4096


def listed_at(index_file: str | Path, where: str = "") -> str:
    """``"<index file name> <where>"``: where an image is listed, for messages."""
    return f"{Path(index_file).name}{' ' + where if where else ''}"


def read_errors() -> tuple[type[BaseException], ...]:
    """What opening or decoding a bad image raises in PIL: a broken or truncated file (OSError and friends) and a
    header declaring more pixels than PIL's decompression-bomb limit (``DecompressionBombError``)."""
    from PIL import Image, UnidentifiedImageError

    return (OSError, UnidentifiedImageError, ValueError, SyntaxError, Image.DecompressionBombError)


def missing(path: str | Path, index_file: str | Path, where: str = "") -> MedlibError:
    return fail(path, f"image listed in {listed_at(index_file, where)} is missing",
                f"restore the image or remove its row from {index_file}")


def unreadable(path: str | Path, exc: BaseException, index_file: str | Path, where: str = "") -> MedlibError:
    """The error for ``exc`` (one of :func:`read_errors`) raised while reading ``path``."""
    from PIL import Image

    at = listed_at(index_file, where)
    if isinstance(exc, Image.DecompressionBombError):
        return fail(path, f"image listed in {at} is too large to decode: {_declared(exc)} (PIL refuses images over "
                          f"{_limit():,} pixels as possible decompression bombs)",
                    f"downscale the image (at most {DOWNSCALE_TO} px a side is plenty) or remove its row from "
                    f"{index_file}")
    return fail(path, f"unreadable image listed in {at} ({type(exc).__name__})",
                f"replace the file or remove its row from {index_file}")


def _limit() -> int:
    """The pixel count above which PIL raises (twice ``Image.MAX_IMAGE_PIXELS``; above it once, it warns)."""
    from PIL import Image

    return 2 * int(Image.MAX_IMAGE_PIXELS or 0)


def _declared(exc: Any) -> str:
    """The pixel count PIL's message states (``Image size (N pixels) exceeds limit ...``)."""
    m = re.search(r"\((\d+) pixels\)", str(exc))
    return f"its header declares {int(m.group(1)):,} pixels" if m else "its header declares too many pixels"
