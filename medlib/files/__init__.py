"""Writing files safely: every write goes to a temporary name and is renamed into place.

=============  ==========================================================================
``atomic``     one file (text, JSON, bytes, npz, any writer), or several that change together
``sets``       a set of files a reader sees whole, old or new, even after ``kill -9`` (the report)
``tensors``    torch files with a digest of their tensors, checked on load; a full disk named
=============  ==========================================================================
"""

from .atomic import atomic_path, write_bytes, write_files, write_json, write_npz, write_text, write_with
from .sets import write_set

__all__ = ["atomic_path", "write_bytes", "write_files", "write_json", "write_npz", "write_set", "write_text",
           "write_with"]
