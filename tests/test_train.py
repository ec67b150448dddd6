"""The trainer end to end on data the test makes: a tiny MNIST in torchvision's idx layout, and generated dSprites."""

import json
import math
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from vae_demo import load_vae

ROOT = Path(__file__).resolve().parent.parent


def write_idx_mnist(root: Path, n_train=192, n_test=64) -> None:
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = (np.arange(n) % 10).astype(np.uint8)
        images = np.zeros((n, 28, 28), np.uint8)
        for i, c in enumerate(labels):  # a bright bar whose position encodes the class, plus noise
            images[i, 4:24, 2 + 2 * c : 5 + 2 * c] = 255
        images = np.clip(images.astype(int) + rng.integers(0, 30, images.shape), 0, 255).astype(np.uint8)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 2051, n, 28, 28) + images.tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, n) + labels.tobytes())


def train(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vae_demo.training.train", "--threads", "1", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_trainer_writes_a_loadable_checkpoint_with_card_and_log(tmp_path):
    write_idx_mnist(tmp_path / "data")
    out = tmp_path / "ckpt"
    r = train("--dataset", "mnist", "--data-root", str(tmp_path / "data"), "--epochs", "2", "--batch-size", "64",
              "--latent-dim", "4", "--hidden-channels", "4", "8", "--hidden-dim", "16", "--out", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    log = json.loads((out / "training_log.json").read_text())
    assert [row["epoch"] for row in log] == [1, 2]
    assert log[-1]["test_elbo"] > log[0]["test_elbo"] - 5  # it trains, not diverges
    card = (out / "README.md").read_text()
    assert "--epochs 2" in card and "epochs completed: 2 of 2" in card and "float16" in card
    assert len(list((out / "examples").glob("*.png"))) == 10
    stats = json.loads((out / "latent_stats.json").read_text())
    assert sorted(stats["kl_order"]) == [0, 1, 2, 3]
    vae = load_vae(str(out))
    assert vae.config.latent_dim == 4 and vae.config.dataset == "mnist"
    from safetensors.torch import load_file

    assert all(t.dtype == torch.float16 for t in load_file(str(out / "model.safetensors")).values())


def test_trainer_generates_dsprites_and_trains_a_beta_tcvae(tmp_path):
    out = tmp_path / "ds"
    r = train("--dataset", "dsprites", "--objective", "beta-tcvae", "--beta", "6", "--epoch-size", "256", "--epochs", "1",
              "--batch-size", "64", "--latent-dim", "3", "--hidden-channels", "4", "4", "4", "4", "--block-convs", "0",
              "--hidden-dim", "16", "--no-binarize", "--out", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    vae = load_vae(str(out))
    assert (vae.config.image_size, vae.config.objective, vae.config.class_names) == (64, "beta-tcvae", ["square", "ellipse", "heart"])
    assert "beta-TCVAE" in (out / "README.md").read_text()


def test_init_from_continues_a_checkpoint_and_may_change_beta_and_objective_but_not_the_architecture(tmp_path):
    write_idx_mnist(tmp_path / "data")
    data = ("--dataset", "mnist", "--data-root", str(tmp_path / "data"), "--batch-size", "64", "--epochs", "1",
            "--latent-dim", "4", "--hidden-dim", "16")
    first, second = tmp_path / "elbo", tmp_path / "tcvae"
    assert train(*data, "--hidden-channels", "4", "8", "--out", str(first)).returncode == 0
    config = json.loads((first / "config.json").read_text())
    (first / "config.json").write_text(json.dumps({**config, "serve_bf16": True}))  # as faces': not the architecture
    # a learning rate too small to move float16 weights: what the second stage saves is what it started from
    r = train(*data, "--hidden-channels", "4", "8", "--objective", "beta-tcvae", "--beta", "4", "--lr", "1e-9",
              "--init-from", str(first), "--out", str(second))
    assert r.returncode == 0, r.stderr[-2000:]
    a, b = load_vae(str(first)).state_dict(), load_vae(str(second)).state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-3) for k in a)
    assert (load_vae(str(second)).config.objective, load_vae(str(second)).config.beta) == ("beta-tcvae", 4.0)
    assert not load_vae(str(second)).config.serve_bf16  # new weights: whether they may serve in bf16 is measured again
    log = json.loads((second / "training_log.json").read_text())
    assert [row["epoch"] for row in log] == [1, 2] and log[1]["continued_at"] == 2
    commands = (second / "train_commands.txt").read_text().splitlines()
    assert len(commands) == 2 and "--init-from" not in commands[0] and "--objective beta-tcvae" in commands[1]

    wider = train(*data, "--hidden-channels", "4", "16", "--init-from", str(first), "--out", str(tmp_path / "wider"))
    assert wider.returncode != 0 and "use the same architecture" in wider.stderr


def test_trainer_runs_factor_vae_with_its_critic_and_logs_the_critics_estimate(tmp_path):
    out = tmp_path / "fv"
    r = train("--dataset", "dsprites", "--objective", "factor-vae", "--beta", "35", "--critic-steps", "2",
              "--epoch-size", "256", "--epochs", "1", "--batch-size", "64", "--latent-dim", "3", "--decoder", "broadcast",
              "--hidden-channels", "4", "4", "4", "4", "--block-convs", "0", "--hidden-dim", "16", "--no-binarize",
              "--out", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    assert load_vae(str(out)).config.objective == "factor-vae"
    log = json.loads((out / "training_log.json").read_text())
    assert "train_tc" in log[0] and math.isfinite(log[0]["train_tc"])
    assert "FactorVAE objective" in (out / "README.md").read_text()
    from safetensors.torch import load_file

    assert not any(k.startswith("critic") or "net." in k for k in load_file(str(out / "model.safetensors")))  # not saved


def torchrun(nproc: int, *args) -> subprocess.CompletedProcess:
    """The trainer as torchrun starts it: `nproc` CPU processes on this machine, gloo, loopback only."""
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
                           "-m", "vae_demo.training.train", "--threads", "1", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**__import__("os").environ, "MASTER_ADDR": "127.0.0.1"})


TINY_MNIST = ("--dataset", "mnist", "--epochs", "3", "--latent-dim", "4", "--hidden-channels", "8", "16", "--hidden-dim", "32",
              "--warmup-epochs", "1")


def test_two_processes_train_one_model_like_one_process_does(tmp_path):
    write_idx_mnist(tmp_path / "data", n_train=1024, n_test=128)
    data = ("--data-root", str(tmp_path / "data"))
    one = train(*TINY_MNIST, *data, "--batch-size", "64", "--out", str(tmp_path / "one"))
    assert one.returncode == 0, one.stderr[-2000:]
    two = torchrun(2, *TINY_MNIST, *data, "--batch-size", "32", "--out", str(tmp_path / "two"))  # the same global batch
    assert two.returncode == 0, two.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "one", "two"]  # one checkpoint, by rank 0
    log1, log2 = (json.loads((tmp_path / d / "training_log.json").read_text()) for d in ("one", "two"))
    assert [r["world_size"] for r in log2] == [2, 2, 2] and log1[-1]["world_size"] == 1
    assert log2[0]["train_loss"] > log2[1]["train_loss"] > log2[2]["train_loss"]  # it learns (measured: 550 -> 514)
    # measured: within 0.2 % of the single process at every epoch (same data, global batch, steps and schedule)
    for a, b in zip(log1, log2):
        assert abs(a["train_loss"] - b["train_loss"]) < 0.03 * a["train_loss"]
    assert abs(log1[-1]["test_elbo"] - log2[-1]["test_elbo"]) < 0.03 * abs(log1[-1]["test_elbo"])
    assert "world_size: 2" in (tmp_path / "two" / "README.md").read_text()
    vae = load_vae(str(tmp_path / "two"))
    assert vae.config.latent_dim == 4 and vae.config.framing == "mnist"


def test_the_whole_batch_objectives_run_under_ddp(tmp_path):
    """beta-TCVAE's minibatch TC estimate uses each rank's own batch; FactorVAE's critic is averaged over ranks."""
    tiny = ("--dataset", "dsprites", "--epoch-size", "256", "--epochs", "1", "--batch-size", "32", "--latent-dim", "3",
            "--hidden-channels", "4", "4", "4", "4", "--block-convs", "0", "--hidden-dim", "16", "--no-binarize")
    for objective in (("--objective", "beta-tcvae", "--beta", "6"), ("--objective", "factor-vae", "--beta", "35",
                                                                     "--critic-steps", "2")):
        out = tmp_path / objective[1]
        r = torchrun(2, *tiny, *objective, "--out", str(out))
        assert r.returncode == 0, r.stderr[-3000:]
        log = json.loads((out / "training_log.json").read_text())
        assert log[0]["world_size"] == 2 and math.isfinite(log[0]["train_loss"])
        assert load_vae(str(out)).config.objective == objective[1]
        if objective[1] == "factor-vae":
            assert math.isfinite(log[0]["train_tc"])


def test_trainer_takes_the_faces_sets_in_colour_and_the_model_frames_faces(tmp_path):
    """Faces made by vae_demo.datasets.faces: a colour VAE with a Gaussian likelihood, framing "faces", colour examples."""
    from PIL import Image

    from vae_demo.datasets.faces import write_faces

    write_faces(tmp_path / "data" / "faces-train", n=96, seed=0, progress=False)
    write_faces(tmp_path / "data" / "faces-test", n=32, seed=1, progress=False)
    out = tmp_path / "faces"
    r = train("--dataset", "faces", "--data-root", str(tmp_path / "data"), "--epochs", "2", "--batch-size", "32",
              "--hidden-channels", "8", "16", "16", "16", "--hidden-dim", "32", "--latent-dim", "4", "--block-convs", "0",
              "--likelihood", "gaussian", "--no-binarize", "--warmup-epochs", "0", "--out", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    vae = load_vae(out)
    c = vae.config
    assert (c.channels, c.image_size, c.likelihood, c.framing, c.dataset) == (3, 64, "gaussian", "faces", "faces")
    log = json.loads((out / "training_log.json").read_text())
    assert log[-1]["train_loss"] < log[0]["train_loss"]
    example = sorted((out / "examples").glob("*.png"))[0]
    assert Image.open(example).mode == "RGB"
    with torch.inference_mode():
        x = vae.decode(torch.zeros(1, 4))
    assert x.shape == (1, 3, 64, 64)


def test_supervised_faces_train_on_their_changed_pairs_and_a_set_that_does_not_pair_is_refused(tmp_path):
    """--supervised-factors --changed-pairs: the trainer reads DATA_ROOT/faces-train-changed beside faces-train; the
    model holds the factor axes; a changed set made from other faces (another --n) is refused with the command."""
    from vae_demo.datasets.face_targets import FACTOR_AXES
    from vae_demo.datasets.faces import write_faces

    data = tmp_path / "data"
    write_faces(data / "faces-train", n=64, seed=0, progress=False)
    write_faces(data / "faces-test", n=32, seed=1, progress=False)
    write_faces(data / "faces-train-changed", n=64, seed=0, progress=False, changed=True)
    args = ["--dataset", "faces", "--data-root", str(data), "--epochs", "2", "--batch-size", "32", "--hidden-channels",
            "8", "16", "16", "--hidden-dim", "32", "--latent-dim", "10", "--block-convs", "0", "--likelihood", "gaussian",
            "--no-binarize", "--warmup-epochs", "0", "--supervised-factors", "--changed-pairs", "0.5"]
    r = train(*args, "--out", str(tmp_path / "faces"))
    assert r.returncode == 0, r.stderr[-2000:]
    vae = load_vae(tmp_path / "faces")
    assert vae.config.factor_axes == list(FACTOR_AXES)
    log = json.loads((tmp_path / "faces" / "training_log.json").read_text())
    assert log[-1]["train_loss"] < log[0]["train_loss"]
    assert "--changed-pairs 0.5" in (tmp_path / "faces" / "train_commands.txt").read_text()
    write_faces(data / "faces-train-changed", n=32, seed=0, progress=False, changed=True)
    r = train(*args, "--out", str(tmp_path / "refused"))
    assert r.returncode != 0 and "does not pair with faces-train" in r.stderr and "--changed" in r.stderr
    # --changed-set: pairs from another folder (here only the skin colour changed), named on the card
    write_faces(data / "faces-train-skin", n=64, seed=0, progress=False, changed=("skin_color",))
    r = train(*args, "--changed-set", "faces-train-skin", "--out", str(tmp_path / "skin"))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "DATA_ROOT/faces-train-skin" in (tmp_path / "skin" / "README.md").read_text()
    r = train(*args, "--changed-set", "faces-train-none", "--out", str(tmp_path / "missing"))
    assert r.returncode != 0 and "faces-train-none" in r.stderr
