"""A visitor's own training images: a zip or several image files -> one uint8 array, fitted to a square side.

Nothing here writes to the disk. A zip is read entry by entry in memory; its entry names are never used as paths
(so `../x` or `/etc/x` cannot land anywhere), and every entry's decompressed bytes are counted as they are read, so a
zip bomb is stopped by what it really inflates to, not by what its directory claims. Files that are not images are
skipped and counted; an animated image gives its first frame; any mode becomes grey or RGB. Whether the set is grey
or colour is decided from the data: grey when every image is (a colour file whose three channels are equal counts).

Each limit is a constant here, and the README's "Train your own" table names them.
"""

import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence, Union

import numpy as np
from PIL import Image, ImageOps

from vae_demo.errors import DemoError
from vae_demo.models.recipe import IMAGE_SIZES, env_count
from vae_demo.imaging.uploads import ImageError, equal_channels, open_image, to_grey_or_rgb


MAX_IMAGES = env_count("VAE_DEMO_TRAIN_MAX_IMAGES", 5000)  # images used from one upload; the rest are counted, not read
MAX_UPLOAD_MB = env_count("VAE_DEMO_TRAIN_MAX_MB", 100)  # the files as sent (zips and images together)
MAX_UNPACKED_MB = 4 * MAX_UPLOAD_MB  # what a zip's entries may inflate to in all
MAX_RATIO = 100  # a zip entry that inflates more than this many times its compressed size is a bomb
MAX_ENTRIES = 20_000  # entries read from one zip (directories and skipped files included)
MIN_SIDE = 8  # images smaller than this on their short side carry no picture to learn from


class TrainInputError(DemoError, ValueError):
    """Training data or settings that cannot be used, with a sentence for the visitor."""


@dataclass
class OwnImages:
    images: np.ndarray  # (N, C, S, S) uint8
    skipped: dict = field(default_factory=dict)  # reason -> count

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    def summary(self) -> str:
        kind = "grey" if self.channels == 1 else "colour"
        text = f"{len(self.images):,} {kind} images, {self.images.shape[-1]}×{self.images.shape[-1]}"
        if self.skipped:
            text += " (skipped: " + ", ".join(f"{n:,} {why}" for why, n in sorted(self.skipped.items())) + ")"
        return text


def _entries(paths: Sequence[Union[str, Path]], skipped: dict) -> Iterator[tuple]:
    """-> (a name to report, the file's bytes) for each image file and each zip entry, in memory, within the limits"""
    sent = 0
    for path in paths:
        path = Path(path)
        try:
            size = path.stat().st_size
        except OSError:
            raise TrainInputError(f"The file {path.name!r} could not be read.") from None
        sent += size
        if sent > MAX_UPLOAD_MB * 2**20:
            raise TrainInputError(f"The files sent come to more than {MAX_UPLOAD_MB} MB, the most one training run "
                                  "takes (VAE_DEMO_TRAIN_MAX_MB). Send fewer or smaller images.")
        with open(path, "rb") as f:
            head = f.read(4)
        if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
            yield from _zip_entries(path, skipped)
        else:
            yield path.name, path.read_bytes()


def _zip_entries(path: Path, skipped: dict) -> Iterator[tuple]:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        raise TrainInputError(f"{path.name!r} looks like a zip but cannot be opened as one.") from None
    inflated = 0
    with archive:
        infos = archive.infolist()
        if len(infos) > MAX_ENTRIES:
            raise TrainInputError(f"{path.name!r} holds {len(infos):,} entries; a training zip may hold {MAX_ENTRIES:,}.")
        for info in infos:
            name = info.filename.replace("\\", "/")
            base = name.rsplit("/", 1)[-1]
            if info.is_dir() or not base or base.startswith(".") or "__MACOSX/" in name:
                continue  # folders, hidden files and macOS's resource forks: not pictures, not counted
            if info.flag_bits & 0x1:
                skipped["encrypted"] = skipped.get("encrypted", 0) + 1
                continue
            budget = min(MAX_UNPACKED_MB * 2**20 - inflated, max(info.compress_size, 1) * MAX_RATIO)
            try:
                with archive.open(info) as f:
                    data = f.read(budget + 1)  # never more than the budget, whatever the header claims
            except (zipfile.BadZipFile, NotImplementedError, OSError, EOFError, RuntimeError):
                skipped["unreadable"] = skipped.get("unreadable", 0) + 1
                continue
            if len(data) > budget:
                raise TrainInputError(
                    f"{path.name!r} inflates past the limits ({MAX_RATIO}× an entry's compressed size, "
                    f"{MAX_UNPACKED_MB} MB in all): it looks like a zip bomb and was not read further.")
            inflated += len(data)
            yield name, data


def _picture(data: bytes, side: int) -> Image.Image:
    """one file's bytes -> its first frame, any mode, shrunk on decode to about `side` (raises ImageError)"""
    return open_image(data, max_side=2 * side)


def read_images(paths: Iterable[Union[str, Path]], image_size: int) -> OwnImages:
    """Files (images or zips of images) -> OwnImages at image_size: each centre-cropped to a square and resized.
    TrainInputError with a sentence when nothing usable is left."""
    if image_size not in IMAGE_SIZES:
        raise TrainInputError(f"image_size must be one of {', '.join(map(str, IMAGE_SIZES))}; got {image_size!r}.")
    paths = [p for p in paths if p]
    if not paths:
        raise TrainInputError("No images were sent. Upload a zip of images or several PNG or JPEG files, or pick "
                              "another source (digits, faces, shapes).")
    skipped: dict = {}
    pictures, grey = [], True
    for _, data in _entries(paths, skipped):
        if len(pictures) >= MAX_IMAGES:
            skipped[f"over the {MAX_IMAGES:,}-image limit"] = skipped.get(f"over the {MAX_IMAGES:,}-image limit", 0) + 1
            continue
        try:
            img = _picture(data, image_size)
        except ImageError:
            skipped["not images"] = skipped.get("not images", 0) + 1
            continue
        if min(img.size) < MIN_SIDE:
            skipped[f"under {MIN_SIDE} px"] = skipped.get(f"under {MIN_SIDE} px", 0) + 1
            continue
        rgb = to_grey_or_rgb(img, 3, background=(255, 255, 255))
        grey = grey and equal_channels(rgb)
        pictures.append(ImageOps.fit(rgb, (image_size, image_size), Image.Resampling.LANCZOS))
    if not pictures:
        found = ", ".join(f"{n:,} {why}" for why, n in sorted(skipped.items())) or "nothing"
        raise TrainInputError(f"No usable images were found (found: {found}). Send PNG, JPEG, GIF, WebP or BMP files "
                              f"at least {MIN_SIDE} px on each side, or a zip of them.")
    arr = np.stack([np.asarray(p, np.uint8) for p in pictures])  # (N, S, S, 3)
    arr = arr[..., :1] if grey else arr
    return OwnImages(np.ascontiguousarray(arr.transpose(0, 3, 1, 2)), skipped)


def zip_of(images: np.ndarray) -> bytes:
    """(N, C, S, S) uint8 -> a zip of PNGs in memory (tests and the benchmark send visitors' uploads this way)"""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for i, a in enumerate(images):
            buf = io.BytesIO()
            Image.fromarray(a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)).save(buf, "PNG")
            z.writestr(f"images/{i:05d}.png", buf.getvalue())
    return out.getvalue()
