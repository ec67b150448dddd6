import numpy as np
import pytest
import torch

from vae_demo.datasets import dsprites as ds

SIZES = ds.FACTORS.sizes


def _sweep(name: str, values, **fixed) -> np.ndarray:
    """one factor swept over `values`, the others at `fixed` or mid-range defaults -> (n, 5) indices"""
    base = {"shape": 0, "scale": 5, "orientation": 0, "pos_x": 16, "pos_y": 16, **fixed}
    return np.array([[v if k == name else base[k] for k in ds.FACTORS.names] for v in values])


def _centre_of_mass(images: torch.Tensor) -> torch.Tensor:
    """(n, 1, H, W) -> (n, 2) (column, row) of the lit pixels"""
    h, w = images.shape[-2:]
    mass = images.sum((1, 2, 3))
    cols = (images.sum((1, 2)) * torch.arange(w)).sum(1) / mass
    rows = (images.sum((1, 3)) * torch.arange(h)).sum(1) / mass
    return torch.stack([cols, rows], 1)


def test_factor_grid_matches_dsprites():
    assert SIZES == (3, 6, 40, 32, 32)
    assert ds.FACTORS.n_images == 737_280
    assert np.allclose(ds.FACTORS.scales, np.linspace(0.5, 1, 6))
    assert ds.FACTORS.orientations[0] == 0 and ds.FACTORS.orientations[-1] < 2 * np.pi - 0.1


def test_shapes_and_dtypes():
    f = ds.sample_factors(37, rng=1)
    images = ds.generate(f)
    assert images.shape == (37, 1, 64, 64) and images.dtype == torch.float32
    assert set(images.unique().tolist()) == {0.0, 1.0}
    one = ds.render("heart", 1.0, 0.3, 0.2, 0.9)
    assert one.shape == (64, 64) and one.dtype == np.uint8 and set(np.unique(one)) == {0, 1}


def test_same_factors_give_same_image_in_any_batch():
    f = ds.sample_factors(300, rng=2)
    images = ds.generate(f)
    perm = np.random.default_rng(0).permutation(len(f))
    assert torch.equal(ds.generate(f[perm]), images[perm])
    assert torch.equal(ds.generate(f[123:124]), images[123:124])
    assert torch.equal(ds.generate(np.concatenate([f[:5], f[:5]]))[5:], images[:5])


def test_render_by_value_matches_generate_by_index():
    f = ds.sample_factors(20, rng=3)
    values = ds.factor_values(f)
    by_value = np.stack([ds.render(int(v[0]), *v[1:]) for v in values])
    assert np.array_equal(by_value, ds.generate(f)[:, 0].numpy())


def test_index_round_trip_and_original_ordering():
    index = np.arange(ds.FACTORS.n_images)
    factors = ds.index_to_factors(index)
    assert factors.shape == (737_280, 5)
    assert np.array_equal(ds.factors_to_index(factors), index)
    # The original varies pos_y fastest and shape slowest.
    assert factors[1].tolist() == [0, 0, 0, 0, 1]
    assert factors[32].tolist() == [0, 0, 0, 1, 0]
    assert factors[-1].tolist() == [s - 1 for s in SIZES]


@pytest.mark.parametrize("shape", [0, 1, 2])
def test_position_moves_the_centre_of_mass(shape):
    com_x = _centre_of_mass(ds.generate(_sweep("pos_x", range(32), shape=shape, orientation=7)))
    assert (com_x[1:, 0] - com_x[:-1, 0] > 0).all()  # strictly rightwards, one step at a time
    assert (com_x[:, 1] - com_x[0, 1]).abs().max() < 0.5  # and not up or down
    assert 30 < com_x[-1, 0] - com_x[0, 0] < 40  # spans most of the frame
    com_y = _centre_of_mass(ds.generate(_sweep("pos_y", range(32), shape=shape, orientation=7)))
    assert (com_y[1:, 1] - com_y[:-1, 1] > 0).all()  # pos_y grows downwards, like image rows
    assert (com_y[:, 0] - com_y[0, 0]).abs().max() < 0.5


@pytest.mark.parametrize("shape", [0, 1, 2])
def test_scale_grows_the_sprite(shape):
    for orientation in (0, 3, 13):
        area = ds.generate(_sweep("scale", range(6), shape=shape, orientation=orientation)).sum((1, 2, 3))
        assert (area[1:] > area[:-1]).all()
        assert 3.4 < area[-1] / area[0] < 4.6  # area goes with scale squared: (1 / 0.5) ** 2


def test_rotation_turns_the_sprite():
    # 10 steps of 9 degrees is a quarter turn: a square looks the same, an ellipse stands up.
    square = ds.generate(_sweep("orientation", [0, 5, 10], shape=0))[:, 0]
    sprite_pixels = square[0].sum()
    assert (square[0] != square[2]).sum() <= 0.02 * sprite_pixels
    assert (square[0] != square[1]).sum() > 0.1 * sprite_pixels  # 45 degrees is not the same
    ellipse = ds.generate(_sweep("orientation", [0, 10, 20], shape=1))[:, 0]
    width, height = ellipse.amax(1).sum(-1), ellipse.amax(2).sum(-1)  # lit columns, lit rows
    assert (width[0] > 1.5 * height[0]) and (height[1] > 1.5 * width[1])
    assert (ellipse[0] != ellipse[2]).sum() <= 0.02 * ellipse[0].sum()  # half a turn: the same


@pytest.mark.parametrize("shape", [0, 1, 2])
def test_sprites_turn_about_their_centre(shape):
    spec = ds.FACTORS
    nominal = spec.margin_px + (spec.image_size - 2 * spec.margin_px) * spec.positions[16] - 0.5  # in pixel indices
    for scale in (0, 5):
        com = _centre_of_mass(ds.generate(_sweep("orientation", range(40), shape=shape, scale=scale)))
        assert (com - nominal).abs().max() < 0.3


def test_the_three_shapes_differ():
    images = ds.generate(_sweep("shape", range(3)))[:, 0]
    for a, b in [(0, 1), (0, 2), (1, 2)]:
        assert (images[a] != images[b]).sum() > 0.1 * images[a].sum()


def test_heart_points_down_ellipse_is_symmetric():
    # At position 0.5 the centre falls exactly on the frame's middle, so mirror images are exact.
    ellipse, heart, square = (ds.render(s, 1.0, 0.0, 0.5, 0.5) for s in ("ellipse", "heart", "square"))
    for sprite in (ellipse, square):
        assert np.array_equal(sprite, np.flipud(sprite)) and np.array_equal(sprite, np.fliplr(sprite))
    assert np.array_equal(heart, np.fliplr(heart))
    assert (heart != np.flipud(heart)).sum() > 0.1 * heart.sum()
    rows = heart.sum(1).nonzero()[0]
    assert heart[rows[0]].sum() > 3 * heart[rows[-1]].sum()  # lobes on top, point at the bottom


def test_sprites_stay_inside_the_frame():
    corners = [(x, y) for x in (0, 31) for y in (0, 31)]
    f = np.array([[s, 5, o, x, y] for s in range(3) for o in range(40) for x, y in corners])
    images = ds.generate(f)[:, 0]
    border = images[:, 0].sum(1) + images[:, -1].sum(1) + images[:, :, 0].sum(1) + images[:, :, -1].sum(1)
    assert (images.sum((1, 2)) > 0).all()
    assert (border == 0).all()


def test_mean_pixel_close_to_original():
    # The original dSprites has mean pixel 0.0425; sprite sizes were chosen to match it.
    mean = ds.generate(ds.sample_factors(3000, rng=4)).mean().item()
    assert 0.038 < mean < 0.047


def test_sampling_is_seeded_and_covers_the_grid():
    a, b = ds.sample_factors(4000, rng=5), ds.sample_factors(4000, rng=5)
    assert np.array_equal(a, b) and not np.array_equal(a, ds.sample_factors(4000, rng=6))
    assert a.dtype == np.int64 and a.shape == (4000, 5)
    for column, size in enumerate(SIZES):
        assert set(np.unique(a[:, column])) == set(range(size))


def test_random_batches_yield_matching_images_and_factors():
    batches = list(ds.random_batches(16, rng=7, n_batches=3))
    assert len(batches) == 3
    for images, factors in batches:
        assert images.shape == (16, 1, 64, 64) and factors.shape == (16, 5) and factors.dtype == torch.int64
        assert torch.equal(images, ds.generate(factors.numpy()))
    assert not torch.equal(batches[0][1], batches[1][1])


def test_rejects_out_of_range_factors():
    with pytest.raises(ValueError):
        ds.generate(np.array([[3, 0, 0, 0, 0]]))
    with pytest.raises(ValueError):
        ds.render("triangle", 1.0, 0.0, 0.5, 0.5)
    with pytest.raises(ValueError):
        ds.render(0, 1.0, 0.0, 1.2, 0.5)
    with pytest.raises(ValueError):
        ds.render(0, 1.5, 0.0, 0.5, 0.5)
    with pytest.raises(ValueError):
        ds.DSpritesFactors(unit_px=12.0)  # would poke out of the frame at the edges
