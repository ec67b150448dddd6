"""Cartoon faces with known factors: python-avatars' parts drawn uniformly, rendered by resvg to 64x64 RGB on white.

Every face comes with the parts it was drawn from, so a knob fitted on them (smile, glasses, beard, skin tone) can
be measured rather than hoped for. Face i of seed s depends only on (s, i): its factors come from numpy's
`default_rng([s, i])`. A held-out set is the same command with another seed, any range of faces can be rendered
alone (`start=`), and workers need not talk to each other.

python-avatars and resvg-py (in requirements.txt for the Train tab's faces source) are needed to make faces, not to serve
a trained model.

    python -m vae_demo.datasets.faces --n 60000 --seed 0 --out DIR [--workers N]

writes DIR/images.npy ((N, 64, 64, 3) uint8, memory-mappable), DIR/labels.csv (one row per face), DIR/sheet.png
(the first 64 faces) and, last, DIR/meta.json; a folder without meta.json is incomplete.

    python -m vae_demo.datasets.faces --n 60000 --seed 0 --changed --out DIR

draws the same faces with one part changed each (`changed_factors`: its facial hair, mouth, glasses or skin colour),
face i of the one set beside face i of the other: the counterfactual pairs the supervised faces model is trained on
(training/objectives.py supervised_loss), so its decoder learns that the part follows the axis, not the other latents.
"""

import argparse
import csv
import io
import itertools
import json
import multiprocessing
import shlex
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import python_avatars as pa
import resvg_py
import torch
from PIL import Image

IMAGE_SIZE = 64
# The square of the avatar's 264x280 frame that is kept: the head and the collar, so the face is about 42 px wide and
# a mouth, an eye behind glasses or a moustache stays legible at 64 px. The tallest hats and hair are cut at the top,
# and the shirt graphic (drawn from y = 228) falls below the crop: it is drawn and labelled but never shows.
VIEWBOX = (32, 24, 200, 200)
_FRAME = 'width="264px" height="280px" viewBox="0 0 264 280"'

# The Avatar constructor's keyword for each factor, in the order they are drawn (and stored) and the members drawn
# from. The top is any hair or hat; facial-hair colour uses the hair colours, hat colour the clothing colours.
FACTORS = (
    ("top", tuple(pa.TopType.get_all())),
    ("hat_color", tuple(pa.ClothingColor)),
    ("eyebrows", tuple(pa.EyebrowType)),
    ("eyes", tuple(pa.EyeType)),
    ("nose", tuple(pa.NoseType)),
    ("mouth", tuple(pa.MouthType)),
    ("facial_hair", tuple(pa.FacialHairType)),
    ("skin_color", tuple(pa.SkinColor)),
    ("hair_color", tuple(pa.HairColor)),
    ("facial_hair_color", tuple(pa.HairColor)),
    ("accessory", tuple(pa.AccessoryType)),
    ("clothing", tuple(pa.ClothingType)),
    ("clothing_color", tuple(pa.ClothingColor)),
    ("shirt_graphic", tuple(pa.ClothingGraphic)),
)
_MEMBERS = dict(FACTORS)


def member_name(member) -> str:
    """An enum member as the labels name it; tops carry their class, since HairType.HAT and HatType.HAT both exist."""
    return f"{type(member).__name__}.{member.name}" if isinstance(member, (pa.HairType, pa.HatType)) else member.name


FACTOR_NAMES = {name: [member_name(m) for m in members] for name, members in FACTORS}

SMILING = frozenset({pa.MouthType.SMILE, pa.MouthType.BIG_SMILE, pa.MouthType.TWINKLE})
NOT_SMILING = frozenset({pa.MouthType.SERIOUS, pa.MouthType.SAD, pa.MouthType.CONCERNED, pa.MouthType.GRIMACE,
                         pa.MouthType.DISBELIEF})
GLASSES = frozenset(pa.AccessoryType[name] for name in ("KURT", "PRESCRIPTION_1", "PRESCRIPTION_2", "ROUND", "SUNGLASSES",
                                                        "SUNGLASSES_2", "WAYFARERS", "WAYFARERS_2"))


def relative_luminance(hex_colour: str) -> float:
    """'#RRGGBB' -> WCAG relative luminance in [0, 1] (linearised sRGB, Rec. 709 weights)"""
    rgb = np.array([int(hex_colour.lstrip("#")[k : k + 2], 16) for k in (0, 2, 4)]) / 255.0
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    return float(linear @ np.array([0.2126, 0.7152, 0.0722]))


# Skin colours from lightest to darkest; a face's skin_tone is its colour's rank here (0 = lightest).
SKIN_TONES = tuple(sorted(pa.SkinColor, key=lambda m: -relative_luminance(m.value)))
_SKIN_RANK = {m: rank for rank, m in enumerate(SKIN_TONES)}


def _has_slot(member, slot_id: str) -> bool:
    """Whether the part's SVG has the group that python-avatars fills with another part or colour."""
    if member.value == "":
        return False
    path = Path(pa.__file__).parent / type(member).__path__ / f"{member.value}.svg"
    return f'id="{slot_id}"' in path.read_text(encoding="utf-8")


# Facial hair and glasses are drawn inside the top's SVG, so a top without their slot silently drops them; the derived
# labels follow what is drawn. The colour slots say where hair and hat colours show at all.
TOP_SLOTS = {slot: frozenset(m for m in _MEMBERS["top"] if _has_slot(m, slot))
             for slot in ("Facial-Hair", "Accessory", "Hair-Color", "Fabric-Color")}
CLOTHING_SLOTS = {slot: frozenset(m for m in _MEMBERS["clothing"] if _has_slot(m, slot)) for slot in ("Fabric-Color", "Graphic")}

DERIVED = ("smile", "glasses", "beard", "skin_tone", "hat", "facial_hair_drawn", "accessory_drawn")
LABEL_COLUMNS = ["index"] + [c for name, _ in FACTORS for c in (name, f"{name}_idx")] + list(DERIVED)


def draw_factors(seed: int, index: int) -> dict:
    """(seed, index) -> {factor: member index}, each uniform over its enum; the same pair always draws the same face"""
    rng = np.random.default_rng([seed, index])
    return {name: int(rng.integers(len(members))) for name, members in FACTORS}


_SLOT = {"facial_hair": "Facial-Hair", "accessory": "Accessory"}  # the parts a top may leave out, by its SVG slot


def top_draws(top, part: str) -> bool:
    """whether a face with this top (an enum member) draws `part` at all: some tops leave out the facial hair or the
    accessory (their SVG has no slot for it); every other part is always drawn"""
    return part not in _SLOT or top in TOP_SLOTS[_SLOT[part]]


def derived_labels(factors: dict) -> dict:
    """factor indices -> the face reader's and knobs' labels, from what is drawn (-1: neither group)"""
    m = {name: _MEMBERS[name][i] for name, i in factors.items()}
    facial_hair_drawn = m["facial_hair"] != pa.FacialHairType.NONE and top_draws(m["top"], "facial_hair")
    accessory_drawn = m["accessory"] != pa.AccessoryType.NONE and top_draws(m["top"], "accessory")
    return {
        "smile": 1 if m["mouth"] in SMILING else 0 if m["mouth"] in NOT_SMILING else -1,
        # -1: an accessory that is not glasses (the eyepatch); a dropped accessory counts as none.
        "glasses": (1 if m["accessory"] in GLASSES else -1) if accessory_drawn else 0,
        "beard": int(facial_hair_drawn),
        "skin_tone": _SKIN_RANK[m["skin_color"]],
        "hat": int(isinstance(m["top"], pa.HatType)),
        "facial_hair_drawn": int(facial_hair_drawn),
        "accessory_drawn": int(accessory_drawn),
    }


# A counterfactual face: the same draw with one of these parts changed, the facial hair most often (its axis is the
# one the decoder most readily ignores: the free latents see the facial hair with the hair it is drawn with). A part
# the face's top does not draw (facial hair, glasses) is never the one changed: the pair would be the same picture.
CHANGEABLE = {"facial_hair": 0.4, "mouth": 0.3, "accessory": 0.15, "skin_color": 0.15}
_SMILE_GROUPS = (SMILING, NOT_SMILING)


def _other_member(name: str, current, rng) -> int:
    """a member of factor `name` other than `current`; half the time one across the knob's divide (beard / none,
    glasses / none, smiling / not smiling), so each pair often shows the knob's factor appear or go"""
    members = _MEMBERS[name]
    if rng.random() < 0.5:
        if name == "facial_hair":
            none = pa.FacialHairType.NONE
            pool = [none] if current != none else [m for m in members if m != none]
        elif name == "accessory":
            pool = [pa.AccessoryType.NONE] if current in GLASSES else sorted(GLASSES, key=members.index)
        elif name == "mouth":
            group = next((g for g in _SMILE_GROUPS if current in g), None)
            pool = sorted((SMILING | NOT_SMILING) - (group or frozenset()), key=members.index)
        else:
            pool = []
        pool = [m for m in pool if m != current]
        if pool:
            return members.index(pool[int(rng.integers(len(pool)))])
    others = [i for i, m in enumerate(members) if m != current]
    return others[int(rng.integers(len(others)))]


def changed_factors(seed: int, index: int, factors: dict, parts: tuple = tuple(CHANGEABLE)) -> tuple:
    """face `index` of `seed` (its factors) -> (the same factors with one part changed, the factor changed); the
    same (seed, index) always changes the same part the same way. `parts`: the parts that may be changed (weighted
    as in CHANGEABLE); a face whose top draws none of them has one of the others changed."""
    rng = np.random.default_rng([seed, index, 1])
    top = _MEMBERS["top"][factors["top"]]
    names = ([name for name in CHANGEABLE if name in parts and top_draws(top, name)]
             or [name for name in CHANGEABLE if top_draws(top, name)])
    weights = np.array([CHANGEABLE[name] for name in names])
    name = names[int(rng.choice(len(names), p=weights / weights.sum()))]
    changed = dict(factors)
    changed[name] = _other_member(name, _MEMBERS[name][factors[name]], rng)
    return changed, name


def face_labels(index: int, factors: dict) -> dict:
    """one labels row: the face's index, each factor by member name and index, then the derived labels"""
    row = {"index": index}
    for name, i in factors.items():
        row[name], row[f"{name}_idx"] = FACTOR_NAMES[name][i], i
    row.update(derived_labels(factors))
    return row


def face_svg(factors: dict) -> str:
    """all factor indices (as draw_factors gives) -> the face's SVG: transparent style, no shirt text, VIEWBOX at 64 px"""
    avatar = pa.Avatar(style=pa.AvatarStyle.TRANSPARENT, shirt_text="",
                       **{name: _MEMBERS[name][i] for name, i in factors.items()})
    svg = avatar.render()
    if _FRAME not in svg:
        raise RuntimeError(f"python-avatars {pa.__version__} no longer writes {_FRAME!r}; update the crop in faces.py.")
    crop = f'width="{IMAGE_SIZE}" height="{IMAGE_SIZE}" viewBox="{" ".join(map(str, VIEWBOX))}"'
    return svg.replace(_FRAME, crop, 1)


def render_face(factors: dict) -> np.ndarray:
    """factor indices -> (64, 64, 3) uint8 RGB, composited on white"""
    # No text is ever drawn (the shirt text is empty), so resvg need not load the system fonts.
    png = resvg_py.svg_to_bytes(svg_string=face_svg(factors), background="white", skip_system_fonts=True)
    with Image.open(io.BytesIO(png)) as im:
        return np.asarray(im.convert("RGB"))


def _changed_parts(changed) -> tuple:
    """render_faces' and write_faces' `changed` (False, True for every part of CHANGEABLE, or the parts that may
    change) -> the parts that may change, () for none"""
    return () if not changed else tuple(CHANGEABLE) if changed is True else tuple(changed)


def _render_range(task: tuple) -> tuple:
    """(seed, start, stop, parts) -> faces start..stop-1 as (stop - start, 64, 64, 3) uint8 and their labels rows;
    with `parts` (_changed_parts), each face with one of them changed (`changed_factors`), its row naming the part in
    "changed"."""
    seed, start, stop, parts = task
    images = np.empty((stop - start, IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
    labels = []
    for j, i in enumerate(range(start, stop)):
        factors = draw_factors(seed, i)
        if parts:
            factors, name = changed_factors(seed, i, factors, parts)
            labels.append(face_labels(i, factors) | {"changed": name})
        else:
            labels.append(face_labels(i, factors))
        images[j] = render_face(factors)
    return images, labels


def _check(seed: int, start: int) -> None:
    if seed < 0 or start < 0:
        raise ValueError(f"seed and start must be non-negative integers; got seed={seed}, start={start}.")


def _chunks(seed: int, start: int, stop: int, chunk: int, workers: int, parts: tuple = ()) -> Iterator[tuple]:
    """faces start..stop-1 in order, `chunk` at a time, rendered by `workers` processes (`parts`: one of them changed)"""
    tasks = [(seed, a, min(a + chunk, stop), parts) for a in range(start, stop, chunk)]
    if workers <= 1:
        yield from map(_render_range, tasks)
        return
    with multiprocessing.Pool(workers) as pool:
        yield from pool.imap(_render_range, tasks)


def render_faces(n: int, seed: int, start: int = 0, workers: int = 1, changed: bool | tuple = False) -> tuple:
    """faces start..start+n-1 of `seed` -> ((n, 64, 64, 3) uint8 RGB, list of n labels rows); `changed` (True, or the
    parts that may change): each with one part changed (`changed_factors`)"""
    _check(seed, start)
    parts = list(_chunks(seed, start, start + n, 256, workers, _changed_parts(changed)))
    images = np.concatenate([p[0] for p in parts]) if parts else np.empty((0, IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
    return images, [row for p in parts for row in p[1]]


def iter_faces(seed: int, batch_size: int, start: int = 0, stop: int | None = None) -> Iterator[tuple]:
    """On the fly: batches ((B, 64, 64, 3) uint8, B labels rows) of faces start, start+1, ... (forever if stop is None)"""
    _check(seed, start)
    for a in itertools.count(start, batch_size):
        b = a + batch_size if stop is None else min(a + batch_size, stop)
        if a >= b:
            return
        yield _render_range((seed, a, b, ()))


def to_tensor(images: np.ndarray, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(N, 64, 64, 3) uint8 -> (N, 3, 64, 64): float in [0, 1], or uint8 0..255 if dtype is torch.uint8"""
    x = torch.from_numpy(np.ascontiguousarray(np.transpose(images, (0, 3, 1, 2))))  # one copy, writable
    return x if dtype == torch.uint8 else x.to(dtype).div_(255.0)


def label_array(labels: list, column: str) -> np.ndarray:
    """one integer column of the labels rows (a *_idx, a derived label or index) -> (N,) int64"""
    return np.array([row[column] for row in labels], dtype=np.int64)


def contact_sheet(images: np.ndarray, columns: int = 8) -> Image.Image:
    """(N, H, W, 3) uint8 -> one PIL image, `columns` faces a row, blank cells white"""
    n, h, w, _ = images.shape
    rows = -(-n // columns)
    sheet = np.full((rows * columns, h, w, 3), 255, np.uint8)
    sheet[:n] = images
    return Image.fromarray(sheet.reshape(rows, columns, h, w, 3).transpose(0, 2, 1, 3, 4).reshape(rows * h, columns * w, 3))


def meta_info(n: int, seed: int) -> dict:
    """What a set was made from: seed, size, versions, the crop, each enum in order and how the derived labels map."""
    return {
        "seed": seed,
        "n": n,
        "image_size": IMAGE_SIZE,
        "viewbox": list(VIEWBOX),
        "versions": {"python-avatars": pa.__version__, "resvg-py": resvg_py.__version__,
                     "resvg": resvg_py.__resvg_version__, "numpy": np.__version__},
        "factors": FACTOR_NAMES,
        "derived": {
            "smile": {"1": sorted(m.name for m in SMILING), "0": sorted(m.name for m in NOT_SMILING), "-1": "other mouths"},
            "glasses": {"1": sorted(m.name for m in GLASSES), "0": ["NONE", "(any accessory the top does not draw)"],
                        "-1": sorted(m.name for m in pa.AccessoryType if m not in GLASSES and m != pa.AccessoryType.NONE)},
            "beard": "1 when facial hair is drawn: facial_hair is not NONE and the top has a facial-hair slot",
            "skin_tone": [{"rank": r, "name": m.name, "hex": m.value, "luminance": round(relative_luminance(m.value), 4)}
                          for r, m in enumerate(SKIN_TONES)],
            "hat": "1 when the top is a HatType",
        },
        "tops_without_slot": {slot: [member_name(m) for m in _MEMBERS["top"] if m not in has]
                              for slot, has in TOP_SLOTS.items()},
        "clothing_without_slot": {slot: [m.name for m in _MEMBERS["clothing"] if m not in has]
                                  for slot, has in CLOTHING_SLOTS.items()},
    }


def write_faces(out, n: int, seed: int, workers: int = 1, progress: bool = True, command: str | None = None,
                changed: bool | tuple = False) -> dict:
    """Render faces 0..n-1 of `seed` into folder `out` (images.npy, labels.csv, sheet.png, meta.json) -> the meta;
    `changed` (True, or the parts that may change): each face with one part changed, its labels row naming the part
    (`changed_factors`)"""
    from tqdm import tqdm

    _check(seed, 0)
    changed = _changed_parts(changed)
    if n < 1:
        raise ValueError(f"n must be at least 1; got {n}.")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "meta.json").unlink(missing_ok=True)
    t0 = time.perf_counter()
    # Written chunk by chunk into a memory map: 60000 faces are 737 MB, never all in memory at once.
    images = np.lib.format.open_memmap(out / "images.npy", mode="w+", dtype=np.uint8, shape=(n, IMAGE_SIZE, IMAGE_SIZE, 3))
    with open(out / "labels.csv", "w", newline="") as f, tqdm(total=n, unit="face", mininterval=2, disable=not progress) as bar:
        writer = csv.DictWriter(f, LABEL_COLUMNS + ["changed"] * bool(changed))
        writer.writeheader()
        pos = 0
        for chunk, rows in _chunks(seed, 0, n, 64, workers, changed):
            images[pos : pos + len(chunk)] = chunk
            writer.writerows(rows)
            pos += len(chunk)
            bar.update(len(chunk))
    images.flush()
    contact_sheet(np.asarray(images[:64])).save(out / "sheet.png")
    del images
    seconds = time.perf_counter() - t0
    meta = meta_info(n, seed) | {"command": command, "workers": workers, "seconds": round(seconds, 1),
                                 "ms_per_face": round(1e3 * seconds / n, 2)}
    if changed:
        meta["changed"] = {"weights": {k: v for k, v in CHANGEABLE.items() if k in changed},
                           "of": f"faces 0..{n - 1} of seed {seed}, face i beside face i"}
    (out / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    return meta


def load_faces(directory, mmap: bool = True) -> tuple:
    """a folder write_faces made -> ((N, 64, 64, 3) uint8, memory-mapped unless mmap=False; list of N labels rows)"""
    directory = Path(directory)
    if not (directory / "meta.json").is_file():
        raise FileNotFoundError(f"{directory} has no meta.json: make the set with "
                                f"`python -m vae_demo.datasets.faces --out {directory}`, or let that run finish.")
    n = json.loads((directory / "meta.json").read_text())["n"]
    images = np.load(directory / "images.npy", mmap_mode="r" if mmap else None)
    integer = {"index"} | {f"{name}_idx" for name, _ in FACTORS} | set(DERIVED)
    with open(directory / "labels.csv", newline="") as f:
        labels = [{k: int(v) if k in integer else v for k, v in row.items()} for row in csv.DictReader(f)]
    if len(images) != n or len(labels) != n:
        raise ValueError(f"{directory} holds {len(images)} images and {len(labels)} labels where meta.json says {n}; "
                         "make the set again.")
    return images, labels


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m vae_demo.datasets.faces", description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=60000, help="number of faces (default: 60000)")
    p.add_argument("--seed", type=int, default=0, help="0 for training, another for a held-out set (default: 0)")
    p.add_argument("--out", required=True, help="folder to write: images.npy, labels.csv, sheet.png, meta.json")
    p.add_argument("--workers", type=int, default=1, help="rendering processes (default: 1)")
    p.add_argument("--changed", action="store_true",
                   help="the same faces with one part changed each (facial hair, mouth, glasses or skin colour): the "
                        "counterfactual pairs of python -m vae_demo.training.train --supervised-factors")
    p.add_argument("--changed-part", action="append", choices=list(CHANGEABLE), metavar="PART",
                   help=f"with --changed: change only this part (repeat for several; one of {', '.join(CHANGEABLE)}); "
                        "a face whose top draws none of them has another part changed")
    args = p.parse_args(argv)
    if args.changed_part and not args.changed:
        p.error("--changed-part goes with --changed.")
    if args.n < 1 or args.seed < 0 or args.workers < 1:
        p.error("--n and --workers must be at least 1 and --seed non-negative.")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    command = "python -m vae_demo.datasets.faces " + shlex.join(sys.argv[1:] if argv is None else argv)
    meta = write_faces(args.out, args.n, args.seed, args.workers, progress=True, command=command,
                       changed=args.changed_part or args.changed)
    print(f"wrote {args.n} faces to {args.out} in {meta['seconds']} s ({meta['ms_per_face']} ms per face)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

