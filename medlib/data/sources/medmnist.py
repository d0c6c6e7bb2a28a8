"""MedMNIST 2D through the ``medmnist`` package (``root=<data_dir>/medmnist``, sizes 28/64/128/224).

Where the file comes from, in order:
1. ``synthetic: always`` -> a generated MedMNIST-format file under ``<data_dir>/fixtures/medmnist/``;
2. the real file ``<data_dir>/medmnist/<flag>[_<size>].npz`` when present (never MD5-checked: the shared
   PneumoniaMNIST copy has its rows reordered, so its MD5 differs from the official one);
3. ``download: true`` -> the package downloads it (offline: MedlibError naming the URL and the local path);
4. ``synthetic: auto`` -> the generated file, with a loud warning;
5. otherwise MedlibError naming the file and how to get it.
Real file and fixture go through the same reader. A present but broken file is always an error.
"""

from __future__ import annotations

import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ...config import DatasetSpec, Profile
from ...errors import MedlibError, fail
from .. import fixtures
from ..bundle import finish
from ..locate import check_kind, choose_source, fixture_dir
from ..base import SPLITS, Split

SIZES = (28, 64, 128, 224)
DEFAULT_FIXTURE_N = 1000
CHEST_FLAGS = {"pneumoniamnist", "chestmnist"}
# Fixture class priors where the real set is notably imbalanced (PneumoniaMNIST is about 1 : 2.9).
FIXTURE_PRIORS = {"pneumoniamnist": [0.26, 0.74], "breastmnist": [0.27, 0.73]}


def _info(spec: DatasetSpec) -> tuple[str, dict]:
    import medmnist

    flag = spec.flag or spec.name
    if flag not in medmnist.INFO:
        raise MedlibError(f"datasets[{spec.name}].flag = {flag!r} is not a MedMNIST 2D flag. Fix: use one of "
                          f"{sorted(k for k in medmnist.INFO if not k.endswith('3d'))}")
    if spec.size not in SIZES:
        raise MedlibError(f"datasets[{spec.name}].size = {spec.size} is not a MedMNIST size. Fix: use one of {SIZES}")
    return flag, medmnist.INFO[flag]


def file_name(flag: str, size: int) -> str:
    return f"{flag}.npz" if size == 28 else f"{flag}_{size}.npz"


def real_path(profile: Profile, spec: DatasetSpec) -> Path:
    return profile.data_path / "medmnist" / file_name(_info(spec)[0], spec.size)


def fixture_path(profile: Profile, spec: DatasetSpec) -> Path:
    return fixture_dir(profile, "medmnist") / file_name(_info(spec)[0], spec.size)


def _is_multilabel(info: dict) -> bool:
    return info["task"].startswith("multi-label")


def class_names(info: dict) -> list[str]:
    """Class names from ``INFO[flag]['label']``, ordered by integer key."""
    return [info["label"][k] for k in sorted(info["label"], key=int)]


def _missing(spec: DatasetSpec, info: dict, real: Path) -> MedlibError:
    return fail(real, "MedMNIST file not found",
                f"put {real.name} there (from {info[_url_key(spec.size)].split('?')[0]}), "
                f"set datasets[{spec.name}].download: true, or synthetic: auto for a generated stand-in")


def plan(profile: Profile, spec: DatasetSpec) -> tuple[str, Path]:
    """('generated' | 'real' | 'hub', file) by the ladder in the module docstring; nothing is read or written.

    ``<data_dir>/medmnist`` that is a file, or ``<flag>.npz`` that is a folder, is an error (never a silent
    generated stand-in)."""
    _, info = _info(spec)
    real = real_path(profile, spec)
    if spec.synthetic != "always":
        check_kind(real, "file", f"datasets[{spec.name}] (MedMNIST)",
                   f"move it away; MedMNIST files go in {real.parent}/ as {real.name}", stop=profile.data_path)
    kind = choose_source(spec, present=real.is_file(), missing=_missing(spec, info, real), remote=spec.download)
    return kind, fixture_path(profile, spec) if kind == "generated" else real


def _choose(profile: Profile, spec: DatasetSpec) -> tuple[Path, bool]:
    """(path to read, synthetic?) following :func:`plan`; may download or generate."""
    flag, info = _info(spec)
    kind, path = plan(profile, spec)
    if kind == "hub":
        _download(spec, info, path)
    elif kind == "generated":
        _ensure_fixture(profile, spec, flag, info)
    return path, kind == "generated"


def inputs(profile: Profile, spec: DatasetSpec) -> list[Path]:
    """The file ``load`` would read now (for the cache key); no download, no generation."""
    kind, path = plan(profile, spec)
    return [path]


def _url_key(size: int) -> str:
    return "url" if size == 28 else f"url_{size}"


def _download(spec: DatasetSpec, info: dict, dest: Path) -> None:
    import medmnist

    dest.parent.mkdir(parents=True, exist_ok=True)
    cls = getattr(medmnist, info["python_class"])
    url = info[_url_key(spec.size)]
    try:
        cls(split="test", root=str(dest.parent), size=spec.size, download=True)
    except Exception as exc:  # the package raises a bare RuntimeError with a multi-line message
        raise fail(dest, f"could not download {url} ({type(exc).__name__})",
                   f"go online, or download it by hand and save it as {dest}") from None
    if not dest.is_file():
        raise fail(dest, f"download of {url} left no file", f"download it by hand and save it as {dest}")


def _ensure_fixture(profile: Profile, spec: DatasetSpec, flag: str, info: dict) -> Path:
    n = spec.fixture_n or DEFAULT_FIXTURE_N
    return fixtures.ensure_medmnist(
        fixture_path(profile, spec), flag, spec.size, n, len(info["label"]), _is_multilabel(info),
        int(info["n_channels"]), FIXTURE_PRIORS.get(flag),
    )


def read_npz(path: Path, spec: DatasetSpec, flag: str, info: dict, synthetic: bool) -> dict[str, Split]:
    """Read the three splits through the medmnist package and check shapes, dtypes and label range."""
    import medmnist

    cls = getattr(medmnist, info["python_class"])
    origin = "generated fixture" if synthetic else "MedMNIST file"
    fix = ("delete it; it is regenerated on the next run" if synthetic else
           f"delete it and download it again ({info[_url_key(spec.size)].split('?')[0]})")
    n_cls = len(info["label"])
    multilabel = _is_multilabel(info)
    out = {}
    for split in SPLITS:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = cls(split=split, root=str(path.parent), size=spec.size, download=False)
                imgs, labels = np.asarray(ds.imgs), np.asarray(ds.labels)
        except KeyError as exc:
            raise fail(path, f"{origin} has no array {exc.args[0]!r}"[:300], fix) from None
        except (OSError, ValueError, EOFError, RuntimeError, zipfile.BadZipFile, zlib.error) as exc:
            msg = " ".join(str(exc).split())[:160]
            raise fail(path, f"unreadable or truncated {origin} ({type(exc).__name__}: {msg})", fix) from None
        n = imgs.shape[0] if imgs.ndim else 0
        if n == 0:
            raise fail(path, f"{origin} has 0 rows in its {split} split ({split}_images is empty)", fix)
        want_img = (spec.size, spec.size) if info["n_channels"] == 1 else (spec.size, spec.size, 3)
        if imgs.dtype != np.uint8 or imgs.shape[1:] != want_img:
            raise fail(path, f"{split}_images is {imgs.dtype} {imgs.shape}, expected uint8 (N, {', '.join(map(str, want_img))})",
                       fix)
        want_lab = (n, n_cls) if multilabel else (n, 1)
        if labels.shape != want_lab or not np.issubdtype(labels.dtype, np.integer):
            raise fail(path, f"{split}_labels is {labels.dtype} {labels.shape}, expected integer {want_lab}", fix)
        hi = 1 if multilabel else n_cls - 1
        if n and (labels.min() < 0 or labels.max() > hi):
            raise fail(path, f"{split}_labels has values outside 0..{hi} (the {flag} class list)", fix)
        labels = labels.astype(np.int64) if multilabel else labels[:, 0].astype(np.int64)
        out[split] = Split(images=np.ascontiguousarray(imgs), labels=labels, captions=None,
                           ids=[f"{flag}/{split}/{i}" for i in range(n)])
    return out


def load(profile: Profile, spec: DatasetSpec):
    """The MedMNIST set ``spec.flag`` as a DatasetBundle (captions None: text.py builds them from labels)."""
    flag, info = _info(spec)
    path, is_syn = _choose(profile, spec)
    splits = read_npz(path, spec, flag, info, is_syn)
    return finish(
        profile, spec, task="multilabel" if _is_multilabel(info) else "multiclass", class_names=class_names(info),
        splits=splits, source=str(path), synthetic=is_syn,
        license=f"{info['license']} (MedMNIST v2, Yang et al. 2023)",
        domain="chest_xray" if flag in CHEST_FLAGS else "medical", files=[path],
        extra={"flag": flag, "medmnist_task": info["task"]},
    )
