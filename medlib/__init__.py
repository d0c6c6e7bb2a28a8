"""medlib: adapting pretrained CLIP models (OpenCLIP) to medical image-text data, with numbers."""

from .config import Profile, load_profile
from .errors import MedlibError

__version__ = "0.1.0"
__all__ = ["MedlibError", "Profile", "load_profile", "__version__"]
