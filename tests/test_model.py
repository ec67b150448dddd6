import pytest
import torch

from vae_demo.models.vae import VAE, VAEConfig

from conftest import TINY


@pytest.mark.parametrize("cfg", [TINY, dict(image_size=28, latent_dim=5, hidden_channels=(8, 16), hidden_dim=32),
                                 dict(image_size=16, channels=3, latent_dim=4, hidden_channels=(4, 8), hidden_dim=16,
                                      likelihood="gaussian"),
                                 dict(image_size=16, latent_dim=3, hidden_channels=(4, 8), hidden_dim=16, decoder="broadcast")])
def test_shapes_and_ranges(cfg):
    torch.manual_seed(0)
    vae = VAE(VAEConfig(**cfg)).eval()
    c = vae.config
    x = torch.rand(5, c.channels, c.image_size, c.image_size)
    mu, logvar = vae.encode(x)
    assert mu.shape == logvar.shape == (5, c.latent_dim)
    x_hat = vae.decode(torch.randn(5, c.latent_dim) * 10)
    assert x_hat.shape == x.shape
    assert x_hat.min() >= 0 and x_hat.max() <= 1
    out = vae(x, compute_loss=True)
    assert out.rec_loss.shape == out.kl.shape == (5,)
    assert (out.kl >= 0).all()
    assert torch.isclose(out.loss, (out.rec_loss + c.beta * out.kl).mean())


def test_posterior_sampling_is_seeded_and_mean_is_deterministic(tiny_vae):
    x = torch.rand(2, 1, 8, 8)
    a = tiny_vae(x, generator=torch.Generator().manual_seed(1)).z
    b = tiny_vae(x, generator=torch.Generator().manual_seed(1)).z
    c = tiny_vae(x, generator=torch.Generator().manual_seed(2)).z
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(tiny_vae(x, sample_posterior=False).z, tiny_vae.encode(x)[0])


def test_kl_is_zero_exactly_at_the_prior():
    mu, logvar = torch.zeros(1, 4), torch.zeros(1, 4)
    assert VAE.kl_per_dim(mu, logvar).abs().max() < 1e-7
    assert (VAE.kl_per_dim(mu + 1, logvar) > 0.49).all()  # 0.5 * mu^2


@pytest.mark.parametrize("bad, words", [(dict(image_size=30, hidden_channels=(8, 16)), "divisible"),
                                        (dict(likelihood="poisson"), "likelihood"),
                                        (dict(channels=2), "channels"), (dict(latent_dim=0), "latent_dim"),
                                        (dict(decoder="mlp"), "decoder"),
                                        (dict(image_size=14, hidden_channels=(8,), decoder="broadcast"), "divisible by 4")])
def test_config_rejects_bad_values_with_a_message(bad, words):
    with pytest.raises(ValueError, match=words):
        VAEConfig(**bad)


def test_save_load_round_trip_gives_identical_outputs(tiny_vae, tiny_folder):
    loaded = VAE.from_pretrained(str(tiny_folder), strict=True)
    assert isinstance(loaded.config, VAEConfig) and loaded.config == tiny_vae.config
    x = torch.rand(3, 1, 8, 8)
    z = torch.randn(3, 3)
    assert torch.equal(tiny_vae.encode(x)[0], loaded.encode(x)[0])
    assert torch.equal(tiny_vae.decode(z), loaded.decode(z))
    assert (tiny_folder / "model.safetensors").is_file() and not (tiny_folder / "pytorch_model.bin").exists()


def test_broadcast_decoder_renders_from_coordinates_and_round_trips(tmp_path):
    """The spatial broadcast decoder tiles z over a grid with x/y coordinates (a buffer, not a weight): the same z
    decodes differently at different places, and save -> load keeps it exactly."""
    torch.manual_seed(0)
    vae = VAE(VAEConfig(image_size=16, latent_dim=3, hidden_channels=(4, 8), hidden_dim=16, decoder="broadcast")).eval()
    assert "coords" not in vae.state_dict() and vae.coords.shape == (1, 2, 4, 4)
    ramp = torch.tensor([-1.0, -1 / 3, 1 / 3, 1.0])
    assert torch.allclose(vae.coords[0, 0, 0], ramp) and torch.allclose(vae.coords[0, 1, :, 0], ramp)  # x along rows, y down
    z = torch.randn(2, 3)
    vae.save_pretrained(tmp_path)
    loaded = VAE.from_pretrained(str(tmp_path), strict=True).eval()
    assert loaded.config.decoder == "broadcast"
    assert torch.equal(vae.decode(z), loaded.decode(z))
    flat = vae.decode(torch.zeros(1, 3))[0, 0]  # z constant over the grid: any structure comes from the coordinates
    assert flat.std() > 0


def test_a_model_with_factor_axes_reads_them_with_its_axis_reader_learns_them_and_round_trips(tmp_path):
    """factor_axes: the first means are the axis reader's regression of the known factors; supervised_loss teaches it
    the values (a few steps bring it closer) while the decoder reads the values it is given; save -> load keeps it."""
    from vae_demo.training.objectives import supervised_loss

    torch.manual_seed(0)
    vae = VAE(VAEConfig(image_size=16, channels=3, latent_dim=4, hidden_channels=(4, 8), hidden_dim=16,
                        likelihood="gaussian", factor_axes=["brightness"]))
    x = torch.rand(32, 3, 16, 16)
    value = x.mean((1, 2, 3))[:, None] * 4 - 2  # a factor of each image that the reader can learn
    assert torch.equal(vae.encode(x)[0][:, :1], vae.axis_reader(x * 2 - 1))
    opt = torch.optim.Adam(vae.parameters(), lr=3e-3)
    before = (vae.encode(x)[0][:, 0] - value[:, 0]).abs().mean().item()
    for _ in range(60):
        loss, out = supervised_loss(vae, x, value, 0.1, beta=1.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert (out.z[:, 0] - value[:, 0]).abs().max() < 0.6  # the decoder read the values given (with noise of 0.1)
    assert (vae.encode(x)[0][:, 0] - value[:, 0]).abs().mean().item() < before / 2
    vae.eval().save_pretrained(tmp_path)
    loaded = VAE.from_pretrained(str(tmp_path), strict=True).eval()
    assert loaded.config.factor_axes == ["brightness"] and torch.equal(loaded.encode(x)[0], vae.encode(x)[0])
    with pytest.raises(ValueError, match="factor_axes"):
        VAEConfig(latent_dim=2, factor_axes=["a", "b", "c"])
    with pytest.raises(ValueError, match="factor_range"):
        VAEConfig(image_size=16, hidden_channels=(4, 8), latent_dim=2, factor_axes=["a"], factor_range=[[1.0, -1.0]])


def test_counterfactual_pairs_teach_the_decoder_to_take_a_factor_from_its_axis():
    """supervised_loss(pairs=...): a face decoded as its pair is drawn from the pair's axis value and the face's own
    other latents, against the pair's picture. Trained on pairs whose brightness is flipped, the decoder makes a
    picture brighter when its axis says so, whatever the other latents saw; with the targets wired to the faces
    themselves instead, it would learn to ignore the axis on those rows."""
    from vae_demo.training.objectives import supervised_loss

    torch.manual_seed(0)
    vae = VAE(VAEConfig(image_size=16, channels=3, latent_dim=4, hidden_channels=(8, 8), hidden_dim=32,
                        likelihood="gaussian", gaussian_std=0.1, factor_axes=["brightness"], factor_range=[[-1.0, 1.0]]))
    pattern = torch.rand(64, 3, 16, 16) * 0.4
    side = torch.randint(0, 2, (64, 1)).float() * 2 - 1  # -1 dark, +1 light
    x, changed = pattern + 0.3 + 0.15 * side[:, :, None, None], pattern + 0.3 - 0.15 * side[:, :, None, None]
    # the loss's arithmetic: every row decoded as its pair is the plain loss on the pairs' pictures and values
    none = torch.zeros(64, dtype=torch.bool)
    torch.manual_seed(1)
    plain = supervised_loss(vae, x, side, 0.1, 1.0)[1].rec_loss
    torch.manual_seed(1)
    assert torch.allclose(supervised_loss(vae, x, side, 0.1, 1.0, pairs=(changed, -side, none))[1].rec_loss, plain)
    torch.manual_seed(1)
    as_pairs = supervised_loss(vae, x, side, 0.1, 1.0, pairs=(changed, -side, ~none))[1].rec_loss
    assert not torch.allclose(as_pairs, plain)
    opt = torch.optim.Adam(vae.parameters(), lr=3e-3)
    for _ in range(200):
        use = torch.rand(64) < 0.5
        loss, _ = supervised_loss(vae, x, side, 0.1, 1.0, pairs=(changed, -side, use))
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        mu, _ = vae.encode(x)
        light, dark = vae.decode(torch.cat([torch.ones(64, 1), mu[:, 1:]], 1)), vae.decode(torch.cat([-torch.ones(64, 1), mu[:, 1:]], 1))
    gap = (light - dark).mean((1, 2, 3))
    assert (gap > 0.15).all(), gap.min()  # 0.3 apart in the data; each face, light or dark to begin with


def test_an_axis_past_the_values_it_was_taught_decodes_as_its_last_value():
    torch.manual_seed(0)
    vae = VAE(VAEConfig(image_size=16, channels=3, latent_dim=3, hidden_channels=(4, 8), hidden_dim=16, likelihood="gaussian",
                        factor_axes=["glasses"], factor_range=[[-1.0, 1.0]])).eval()
    z = torch.tensor([[1.0, 0.3, -0.2], [3.0, 0.3, -0.2], [0.2, 0.3, -0.2], [-4.0, 0.3, -0.2], [-1.0, 0.3, -0.2]])
    x = vae.decode(z)
    same = lambda a, b: torch.allclose(a, b, atol=1e-6)  # noqa: E731
    assert same(x[0], x[1]) and same(x[3], x[4]) and not same(x[0], x[2]) and not same(x[0], x[4])
    assert not same(vae.decode(z[1:2, [0, 2, 1]] * 3)[0], vae.decode(z[1:2, [0, 2, 1]])[0])  # only the axis is clamped
