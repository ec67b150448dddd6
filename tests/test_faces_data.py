"""The face generator (vae_demo/datasets/faces.py): deterministic per seed, labels that match what is drawn, RGB on white."""

import csv
import json
from collections import Counter

import numpy as np
import pytest

pa = pytest.importorskip("python_avatars", reason="faces need python-avatars and resvg-py (requirements.txt)")
pytest.importorskip("resvg_py", reason="faces need python-avatars and resvg-py (requirements.txt)")

from vae_demo.datasets import face_targets as T
from vae_demo.datasets import faces as F


def _idx(factor: str, member) -> int:
    return F._MEMBERS[factor].index(member)


# A plain face to vary one part at a time: short hair, no glasses, no facial hair, a closed mouth, no clothes.
PLAIN = {**F.draw_factors(0, 1), "top": _idx("top", pa.HairType.SHORT_FLAT), "accessory": 0, "facial_hair": 0,
         "mouth": _idx("mouth", pa.MouthType.SERIOUS), "clothing": _idx("clothing", pa.ClothingType.NONE),
         "skin_color": _idx("skin_color", pa.SkinColor.LIGHT), "facial_hair_color": _idx("facial_hair_color", pa.HairColor.BLACK)}


def _changed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """two (64, 64, 3) faces -> (64, 64) bool: the pixels that differ"""
    return (a != b).any(-1)


def test_same_seed_same_faces_other_seed_other_faces():
    images, labels = F.render_faces(6, seed=3)
    again, labels_again = F.render_faces(6, seed=3)
    assert np.array_equal(images, again) and labels == labels_again
    other, other_labels = F.render_faces(6, seed=4)
    assert all(not np.array_equal(a, b) for a, b in zip(images, other))
    assert [r["top"] for r in labels] != [r["top"] for r in other_labels]
    # Face i depends on (seed, i) alone: any range, batch size or worker count gives the same faces.
    tail, tail_labels = F.render_faces(3, seed=3, start=3)
    assert np.array_equal(tail, images[3:]) and tail_labels == labels[3:]
    batches = list(F.iter_faces(3, batch_size=4, stop=6))
    assert [len(b[0]) for b in batches] == [4, 2]
    assert np.array_equal(np.concatenate([b[0] for b in batches]), images)
    pooled, pooled_labels = F.render_faces(6, seed=3, workers=2)
    assert np.array_equal(pooled, images) and pooled_labels == labels


def test_labels_record_every_factor_by_name_and_index():
    _, labels = F.render_faces(4, seed=5)
    for i, row in enumerate(labels):
        assert list(row) == F.LABEL_COLUMNS and row["index"] == i
        drawn = F.draw_factors(5, i)
        for name, members in F.FACTORS:
            assert row[f"{name}_idx"] == drawn[name]
            assert row[name] == F.member_name(members[drawn[name]])
    # HairType.HAT and HatType.HAT share a member name; the labels tell them apart.
    assert len(set(F.FACTOR_NAMES["top"])) == len(F.FACTOR_NAMES["top"]) == len(pa.HairType) + len(pa.HatType)


def test_every_part_is_drawn_uniformly_from_its_enum():
    draws = [F.draw_factors(7, i) for i in range(3000)]
    for name, members in F.FACTORS:
        counts = Counter(d[name] for d in draws)
        k, expected = len(members), 3000 / len(members)
        assert set(counts) == set(range(k)), name
        # Binomial counts stay within 5 standard deviations of n/k for a uniform draw; a skewed one would not.
        assert all(abs(c - expected) < 5 * np.sqrt(expected * (1 - 1 / k)) for c in counts.values()), (name, counts)


def test_images_are_rgb_64px_on_white():
    images, _ = F.render_faces(8, seed=0)
    assert images.shape == (8, 64, 64, 3) and images.dtype == np.uint8
    assert (images[:, 0, [0, -1]] == 255).all()  # the top corners: background, above any hair
    plain = F.render_face(PLAIN)
    assert (plain[[0, 0, -1, -1], [0, -1, 0, -1]] == 255).all()
    assert (plain == 255).all(-1).mean() > 0.3 and (plain != 255).any(-1).mean() > 0.3  # a face, and white around it


def test_beard_label_and_pixels():
    plain = F.render_face(PLAIN)
    assert F.derived_labels(PLAIN)["beard"] == 0
    beard = dict(PLAIN, facial_hair=_idx("facial_hair", pa.FacialHairType.BEARD_MEDIUM))
    assert F.derived_labels(beard)["beard"] == 1
    changed = _changed(F.render_face(beard), plain)
    assert changed[36:, 16:48].sum() > 150  # the jaw and chin
    assert not changed[:20].any()  # above the eyes nothing moves
    for member in pa.FacialHairType:
        assert F.derived_labels(dict(PLAIN, facial_hair=_idx("facial_hair", member)))["beard"] == int(member.value != "")
    # A top without a facial-hair slot drops the beard: the label follows the pixels, not the draw.
    loose = dict(PLAIN, top=_idx("top", pa.HairType.LOOSE_HAIR))
    loose_beard = dict(beard, top=loose["top"])
    assert F.derived_labels(loose_beard)["beard"] == F.derived_labels(loose_beard)["facial_hair_drawn"] == 0
    assert np.array_equal(F.render_face(loose_beard), F.render_face(loose))


def test_glasses_label_is_one_exactly_for_glasses():
    glasses = {"KURT", "PRESCRIPTION_1", "PRESCRIPTION_2", "ROUND", "SUNGLASSES", "SUNGLASSES_2", "WAYFARERS", "WAYFARERS_2"}
    got = {m.name: F.derived_labels(dict(PLAIN, accessory=_idx("accessory", m)))["glasses"] for m in pa.AccessoryType}
    assert got == {name: 1 if name in glasses else 0 if name == "NONE" else -1 for name in got}
    assert got["EYEPATCH"] == -1
    plain = F.render_face(PLAIN)
    changed = _changed(F.render_face(dict(PLAIN, accessory=_idx("accessory", pa.AccessoryType.ROUND))), plain)
    assert changed[18:36].sum() > 60 and not changed[40:].any()  # round glasses change the eye band only
    curly = dict(PLAIN, top=_idx("top", pa.HairType.LONG_HAIR_CURLY), accessory=_idx("accessory", pa.AccessoryType.ROUND))
    assert F.derived_labels(curly)["glasses"] == 0  # this top has no accessory slot, so nothing is drawn
    assert np.array_equal(F.render_face(curly), F.render_face(dict(curly, accessory=0)))


def test_smile_groups():
    got = {m.name: F.derived_labels(dict(PLAIN, mouth=_idx("mouth", m)))["smile"] for m in pa.MouthType}
    assert {n for n, v in got.items() if v == 1} == {"SMILE", "BIG_SMILE", "TWINKLE"}
    assert {n for n, v in got.items() if v == 0} == {"SERIOUS", "SAD", "CONCERNED", "GRIMACE", "DISBELIEF"}
    assert {n for n, v in got.items() if v == -1} == {"DEFAULT", "EATING", "SCREAM_OPEN", "TONGUE", "VOMIT"}


def test_skin_tone_ranks_the_drawn_skin_by_luminance():
    assert [m.name for m in F.SKIN_TONES] == ["PALE", "YELLOW", "LIGHT", "TANNED", "BROWN", "DARK_BROWN", "BLACK"]
    luminance = []
    for rank, member in enumerate(F.SKIN_TONES):
        factors = dict(PLAIN, skin_color=_idx("skin_color", member))
        assert F.derived_labels(factors)["skin_tone"] == rank
        image = F.render_face(factors)
        rgb = np.array([int(member.value[k : k + 2], 16) for k in (1, 3, 5)])
        skin = (image == rgb).all(-1)
        assert skin.sum() > 300, member  # the face is painted in this colour
        luminance.append(image[skin].astype(float) @ [0.2126, 0.7152, 0.0722])
    means = [v.mean() for v in luminance]
    assert means == sorted(means, reverse=True) and len(set(means)) == 7


def test_cli_writes_images_labels_and_meta(tmp_path):
    out = tmp_path / "faces"
    assert F.main(["--n", "5", "--seed", "2", "--out", str(out)]) == 0
    images, labels = F.load_faces(out)
    assert images.shape == (5, 64, 64, 3) and images.dtype == np.uint8
    with open(out / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 5 and list(rows[0]) == F.LABEL_COLUMNS
    expected_images, expected_labels = F.render_faces(5, seed=2)
    assert np.array_equal(images, expected_images) and labels == expected_labels
    meta = json.loads((out / "meta.json").read_text())
    assert meta["n"] == 5 and meta["seed"] == 2 and meta["versions"]["python-avatars"] == pa.__version__
    assert meta["factors"]["mouth"] == [m.name for m in pa.MouthType]
    assert (out / "sheet.png").is_file()
    x = F.to_tensor(images)
    assert x.shape == (5, 3, 64, 64) and 0.0 <= x.min() and x.max() == 1.0
    assert F.label_array(labels, "skin_tone").tolist() == [r["skin_tone"] for r in expected_labels]


def test_load_refuses_an_unfinished_set(tmp_path):
    F.write_faces(tmp_path, 2, seed=0, progress=False)
    (tmp_path / "meta.json").unlink()
    with pytest.raises(FileNotFoundError, match="meta.json"):
        F.load_faces(tmp_path)


def test_a_face_exported_at_the_avataaars_canvas_is_framed_as_the_data_was_made():
    """python-avatars' own 264 x 280 export, transparent, any size: framed "faces" it is the dataset's render of it."""
    import io

    from vae_demo.imaging.framing import frame

    from PIL import Image

    faces = F
    factors = faces.draw_factors(5, 3)
    theirs = faces.render_face(factors).astype(np.float32) / 255.0
    avatar = faces.pa.Avatar(style=faces.pa.AvatarStyle.TRANSPARENT, shirt_text="",
                             **{name: faces._MEMBERS[name][i] for name, i in factors.items()})
    svg = avatar.render().replace('width="264px" height="280px"', 'width="528px" height="560px"')  # exported at 2x
    png = faces.resvg_py.svg_to_bytes(svg_string=svg, skip_system_fonts=True)  # transparent, not on white
    ours = frame(png, "faces", 64).image[0].permute(1, 2, 0).numpy()
    other = faces.render_face(faces.draw_factors(5, 4)).astype(np.float32) / 255.0
    assert ours.shape == (64, 64, 3)
    assert np.abs(ours - theirs).mean() < 0.03  # the same face, the same crop, on white
    assert np.abs(ours - theirs).mean() < 0.25 * np.abs(other - theirs).mean()
    tall = Image.new("RGB", (100, 140), "black")  # another shape: padded with white to a square, not cropped
    tall.paste(Image.fromarray((theirs * 255).astype(np.uint8)).resize((100, 100)), (0, 20))
    padded = frame(tall, "faces", 64).image
    assert padded.shape == (1, 3, 64, 64)
    assert float(padded[0, :, 32, 0].min()) > 0.99 and float(padded[0, :, 0, 32].max()) < 0.01  # white sides, its own top


def test_the_supervised_axes_place_each_face_by_its_factors_and_its_parts_by_their_group():
    """skin tone from -1.5 (lightest) to +1.5 (darkest) in half steps; glasses, beard, smile at +-1 (other mouths and
    the eyepatch 0); a kind axis tells the members of a group apart and puts the first of each group at -1"""
    rows = [F.face_labels(i, F.draw_factors(0, i)) for i in range(400)]
    v = T.factor_axis_values(rows)
    assert v.shape == (400, 7) and T.FACTOR_AXES[:4] == ("skin_tone", "glasses", "beard", "smile")
    assert len(T.FACTOR_RANGE) == 7 and all(lo <= v[:, k].min() and v[:, k].max() <= hi for k, (lo, hi) in enumerate(T.FACTOR_RANGE))
    for row, (skin, glasses, beard, smile, mouth, specs, hair) in zip(rows, v):
        assert skin == (row["skin_tone"] - 3) * 0.5
        assert glasses == {1: 1.0, 0: -1.0, -1: 0.0}[row["glasses"]] and beard == (1.0 if row["beard"] else -1.0)
        assert smile == {1: 1.0, 0: -1.0, -1: 0.0}[row["smile"]]
        if row["mouth"] in ("CONCERNED", "SMILE"):  # the first of the not-smiling five and of the smiling three
            assert mouth == -1.0
        if row["accessory"] not in {m.name for m in F.GLASSES}:
            assert specs == 0.0
    assert set(np.unique(v[:, 0])) == {-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5}
    assert len(np.unique(v[:, 4])) == 5 and len(np.unique(v[:, 5])) == 8 + 1 and len(np.unique(v[:, 6])) == 7


def test_a_changed_face_is_the_same_draw_with_one_part_changed_and_its_labels_say_which(tmp_path):
    """--changed: face i again with its facial hair, mouth, glasses or skin changed (a part its top draws), the same
    way for the same seed; the pixels that change are that part's, and its labels row names the part"""
    faces, rows = F.render_faces(40, seed=0)
    changed, changed_rows = F.render_faces(40, seed=0, changed=True)
    again, again_rows = F.render_faces(40, seed=0, changed=True, workers=2)
    assert np.array_equal(changed, again) and changed_rows == again_rows
    names = Counter(row["changed"] for row in changed_rows)
    assert set(names) <= set(F.CHANGEABLE) and names["facial_hair"] >= 8 and names["mouth"] >= 5
    crossings = 0
    for face, row, other, other_row in zip(faces, rows, changed, changed_rows):
        part = other_row["changed"]
        assert other_row["index"] == row["index"] and not np.array_equal(face, other)  # a change that shows
        differs = [name for name, _ in F.FACTORS if row[f"{name}_idx"] != other_row[f"{name}_idx"]]
        assert differs == [part]
        derived = {"facial_hair": "beard", "mouth": "smile", "accessory": "glasses", "skin_color": "skin_tone"}[part]
        crossings += row[derived] != other_row[derived]
        moved = _changed(face, other)
        if part != "skin_color":  # a mouth, a beard or glasses: a small part of the picture, below the hairline
            assert moved.mean() < 0.25 and moved[:16].mean() < 0.05, (part, moved.mean())
    assert crossings >= 12  # about half the changes cross the knob's divide (a beard appears or goes, ...)
    F.write_faces(tmp_path, 4, seed=0, progress=False, changed=True)
    images, labels = F.load_faces(tmp_path)
    assert np.array_equal(images, changed[:4]) and [r["changed"] for r in labels] == [r["changed"] for r in changed_rows[:4]]
    assert json.loads((tmp_path / "meta.json").read_text())["changed"]["weights"] == F.CHANGEABLE


def test_changed_part_changes_only_that_part_and_the_cli_wants_changed(tmp_path):
    """--changed --changed-part skin_color: every face again with only its skin colour changed, the same way each time;
    meta.json's weights name only that part; --changed-part alone is refused"""
    faces, rows = F.render_faces(24, seed=0)
    skin, skin_rows = F.render_faces(24, seed=0, changed=("skin_color",))
    assert {row["changed"] for row in skin_rows} == {"skin_color"}
    for face, row, other, other_row in zip(faces, rows, skin, skin_rows):
        assert [name for name, _ in F.FACTORS if row[f"{name}_idx"] != other_row[f"{name}_idx"]] == ["skin_color"]
        assert not np.array_equal(face, other)
    again, _ = F.render_faces(24, seed=0, changed=("skin_color",), workers=2)
    assert np.array_equal(skin, again)
    assert F.main(["--n", "3", "--seed", "0", "--changed", "--changed-part", "skin_color", "--out", str(tmp_path / "s")]) == 0
    assert json.loads((tmp_path / "s" / "meta.json").read_text())["changed"]["weights"] == {"skin_color": F.CHANGEABLE["skin_color"]}
    with pytest.raises(SystemExit):
        F.parse_args(["--changed-part", "skin_color", "--out", str(tmp_path / "t")])
