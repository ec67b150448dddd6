"""Train a VAE on MNIST, Fashion-MNIST or generated dSprites and save it as a checkpoint folder.

    python -m vae_demo.training.train --dataset mnist --epochs 40 --out checkpoints/mnist
    python -m vae_demo.training.train --dataset dsprites --objective beta-tcvae --beta 6 --latent-dim 10 --hidden-channels 16 32 32 64 \
        --block-convs 0 --hidden-dim 256 --epoch-size 75000 --epochs 6 --warmup-epochs 1 --no-binarize --out checkpoints/dsprites

Reads top to bottom: options, data, model, loop (KL warm-up, cosine learning rate), and after every
epoch a test-set ELBO and a save (training/checkpoint.py), so an interrupted run still leaves a usable checkpoint.
"""

import argparse
import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Optional

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data.distributed import DistributedSampler
from tqdm import tqdm

from vae_demo.training import distributed

from vae_demo.datasets.dsprites import FACTORS, generate, sample_factors
from vae_demo.datasets.mnist import DATASETS, DEFAULT_ROOT, ImageData, binarize, export_examples, fixed_binarized_test_set, load_dataset
from vae_demo.device import pick_device
from vae_demo.models.vae import VAE, VAEConfig
from vae_demo.training.checkpoint import history, save_epoch
from vae_demo.training.objectives import TCDiscriminator, beta_tcvae_loss, critic_loss, factor_vae_loss, supervised_loss
from vae_demo.training.stats import latent_statistics

FRAMING = {"mnist": "mnist", "fashion-mnist": "fashion", "faces": "faces"}  # how each dataset's images were framed (vae_demo/imaging/framing.py)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m vae_demo.training.train", description=__doc__.splitlines()[0])
    p.add_argument("--dataset", choices=DATASETS + ("dsprites", "faces"), default="mnist",
                   help="faces: the sets `python -m vae_demo.datasets.faces` made in DATA_ROOT/faces-train and faces-test")
    p.add_argument("--epoch-size", type=int, default=100_000, help="dsprites: freshly generated images per epoch")
    p.add_argument("--eval-size", type=int, default=0, help="test images the per-epoch ELBO is measured on (0: all)")
    p.add_argument("--data-root", default=DEFAULT_ROOT)
    p.add_argument("--out", required=True, help="checkpoint folder to write (config.json, model.safetensors, ...)")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--latent-dim", type=int, default=32)
    p.add_argument("--hidden-channels", type=int, nargs="+", default=[32, 64])
    p.add_argument("--hidden-dim", type=int, default=512)
    p.add_argument("--block-convs", type=int, default=1, help="extra 3x3 convs per stage (0: lean, for 64x64 data)")
    p.add_argument("--decoder", choices=["deconv", "broadcast"], default="deconv",
                   help="broadcast: spatial broadcast decoder (Watters et al. 2019), for data whose factors include position")
    p.add_argument("--likelihood", choices=["bernoulli", "gaussian"], default="bernoulli")
    p.add_argument("--gaussian-std", type=float, default=0.1, help="gaussian: the fixed per-pixel standard deviation of p(x|z)")
    p.add_argument("--beta", type=float, default=1.0, help="KL weight (elbo) or total-correlation weight (beta-tcvae; factor-vae's gamma)")
    p.add_argument("--objective", choices=["elbo", "beta-tcvae", "factor-vae"], default="elbo")
    p.add_argument("--critic-lr", type=float, default=1e-3, help="factor-vae: the critic's Adam learning rate")
    p.add_argument("--critic-steps", type=int, default=3,
                   help="factor-vae: critic updates per VAE update (a critic that lags is fooled, not obeyed)")
    p.add_argument("--warmup-epochs", type=float, default=5.0, help="ramps up from 0 over this many epochs: the KL weight (elbo), TC + dimension-wise KL (beta-tcvae), gamma * TC (factor-vae)")
    p.add_argument("--conditional", action="store_true",
                   help="a conditional VAE (Sohn et al. 2015): encoder and decoder also see the class label (mnist, fashion-mnist)")
    p.add_argument("--supervised-factors", action="store_true",
                   help="faces: the first seven latents are the face's skin tone, glasses, beard, smile and which "
                        "mouth, glasses and facial hair (vae_demo/datasets/face_targets.py FACTOR_AXES; training/objectives.py "
                        "supervised_loss), so each of those factors has an axis of its own")
    p.add_argument("--changed-pairs", type=float, default=0.0, metavar="FRACTION",
                   help="--supervised-factors: this fraction of each batch is decoded as its counterfactual pair "
                        "(the same face with one part changed, DATA_ROOT/faces-train-changed, made by "
                        "python -m vae_demo.datasets.faces --changed): the changed part's values and the face's other "
                        "latents must draw the changed face, so the decoder takes that part from its axis")
    p.add_argument("--changed-set", default="faces-train-changed", metavar="NAME",
                   help="--changed-pairs: the pairs' folder under DATA_ROOT (e.g. one made with --changed "
                        "--changed-part skin_color: only the skin colour changed)")
    p.add_argument("--binarize", action=argparse.BooleanOptionalAction, default=True,
                   help="dynamic binarization of inputs (resampled every batch)")
    p.add_argument("--notes", default="", help="a paragraph for the model card (e.g. why this likelihood)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--device", default="auto")
    p.add_argument("--init-from", default=None,
                   help="continue from this checkpoint folder (same architecture): its weights, training log and commands carry over")
    p.add_argument("--weights-dtype", choices=["float16", "float32"], default="float16",
                   help="dtype of the saved model.safetensors (float16 halves the size; loading casts back to float32)")
    return p.parse_args(argv)


@torch.inference_mode()
def evaluate_elbo(model: VAE, images: torch.Tensor, batch_size: int = 1000, labels=None) -> dict:
    """Test-set ELBO (beta = 1, posterior sampled once per image), in nats per image; a conditional model's is of
    log p(x | label) and reads `labels`."""
    model.eval()
    g = torch.Generator(device=model.device).manual_seed(1234)
    rec = kl = 0.0
    for i in range(0, len(images), batch_size):
        x = images[i : i + batch_size].to(model.device)
        y = labels[i : i + batch_size] if model.config.num_labels else None
        out = model(x, generator=g, compute_loss=True, y=y)
        rec += out.rec_loss.sum().item()
        kl += out.kl.sum().item()
    n = len(images)
    return {"test_rec": rec / n, "test_kl": kl / n, "test_elbo": -(rec + kl) / n}


def load_data(args, world, out: Path) -> tuple:
    """-> (train ImageData, or None for dSprites, generated afresh every epoch; test ImageData; training images per
    epoch). Rank 0 also exports a few test images as the checkpoint's examples."""
    if args.dataset == "faces":  # made beforehand by python -m vae_demo.datasets.faces (rendering is the slow part)
        from vae_demo.datasets.face_targets import load_split

        train, test = load_split(args.data_root, True), load_split(args.data_root, False, args.eval_size or None)
        if args.supervised_factors:  # each face's place on the supervised axes rides along as its label
            from vae_demo.datasets.face_targets import factor_axis_values
            from vae_demo.datasets.faces import load_faces

            rows = load_faces(Path(args.data_root) / "faces-train")[1]
            train = dataclasses.replace(train, labels=torch.from_numpy(factor_axis_values(rows)))
        if world.main:
            export_examples(test, out / "examples", per_class=2, max_images=12)
        return train, test, len(train.images)
    if args.dataset == "dsprites":  # generated, never downloaded: a fresh sample every epoch
        test_factors = sample_factors(5000, rng=10_000)
        test = ImageData(generate(test_factors), torch.as_tensor(test_factors[:, 0]), list(FACTORS.shapes))
        if world.main:
            export_examples(test, out / "examples", per_class=3, max_images=9)
        return None, test, args.epoch_size
    train = load_dataset(args.dataset, train=True, root=args.data_root)
    if args.binarize:
        test = fixed_binarized_test_set(args.dataset, root=args.data_root, seed=0)
    else:
        test = load_dataset(args.dataset, train=False, root=args.data_root)
    if world.main:
        export_examples(test if not args.binarize else load_dataset(args.dataset, False, args.data_root), out / "examples")
    return train, test, len(train.images)


@dataclasses.dataclass
class FacePairs:
    """Each training face with one part changed (`python -m vae_demo.datasets.faces --changed`), face i beside face i."""

    images: torch.Tensor  # (N, 3, 64, 64) uint8
    axes: torch.Tensor  # (N, K) the changed faces' places on FACTOR_AXES


def load_pairs(args, n_train: int) -> Optional[FacePairs]:
    """--changed-pairs: DATA_ROOT/--changed-set, checked against the training set; else None"""
    if not args.changed_pairs:
        return None
    from vae_demo.datasets.face_targets import factor_axis_values
    from vae_demo.datasets.faces import load_faces, to_tensor

    folder = Path(args.data_root) / args.changed_set
    images, rows = load_faces(folder, mmap=False)
    if len(rows) != n_train or any(row["index"] != i for i, row in enumerate(rows)):
        raise SystemExit(f"{folder} does not pair with faces-train: make it with `python -m vae_demo.datasets.faces "
                         f"--n {n_train} --seed 0 --changed --out {folder}` (the training set's --n and --seed).")
    return FacePairs(to_tensor(images, torch.uint8), torch.from_numpy(factor_axis_values(rows)))


def build_model(args, test) -> VAE:
    """The VAE these options describe, with the earlier run's weights for a continuation."""
    axes = ranges = None
    if args.supervised_factors:  # python-avatars: only when the faces are used
        from vae_demo.datasets.face_targets import FACTOR_AXES as axes, FACTOR_RANGE as ranges
    config = VAEConfig(
        image_size=test.images.shape[-1], channels=test.images.shape[1], latent_dim=args.latent_dim, hidden_channels=tuple(args.hidden_channels),
        hidden_dim=args.hidden_dim, block_convs=args.block_convs, decoder=args.decoder, objective=args.objective,
        likelihood=args.likelihood, gaussian_std=args.gaussian_std, beta=args.beta, dataset=args.dataset, class_names=test.class_names,
        framing=FRAMING.get(args.dataset, "none"), num_labels=len(test.class_names) if args.conditional else 0,
        factor_axes=list(axes) if axes else None, factor_range=[list(r) for r in ranges] if ranges else None,
    )
    model = VAE(config)
    if args.init_from:
        earlier = VAE.from_pretrained(args.init_from)
        # beta, the objective and the Gaussian's sigma may change between stages; the architecture may not. Whether
        # it may serve in bf16 is not carried over: that is measured again on the new weights (benchmarks/faces.py)
        if dataclasses.replace(earlier.config, beta=config.beta, objective=config.objective, framing=config.framing,
                               gaussian_std=config.gaussian_std, serve_bf16=config.serve_bf16) != config:
            raise SystemExit(f"--init-from {args.init_from}: its config differs from these options; use the same architecture")
        model.load_state_dict(earlier.state_dict())
    return model


@dataclasses.dataclass
class Run:
    """What one training run steps: the model (and its DDP wrapper), optimisers, schedule and random streams."""

    args: argparse.Namespace
    world: object
    model: VAE
    net: torch.nn.Module  # `model`, or DDP around it under torchrun: losses go through this one
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LambdaLR
    gen: torch.Generator  # binarization and the critic's shuffles: a stream of its own on each rank
    n_train: int
    per_rank: int
    steps_per_epoch: int
    sampler: Optional[DistributedSampler] = None
    critic: Optional[torch.nn.Module] = None  # FactorVAE's: a training aid, not saved with the checkpoint
    critic_opt: Optional[torch.optim.Optimizer] = None
    pairs: Optional[FacePairs] = None  # --changed-pairs
    step: int = 0


def start_run(args, world, model: VAE, n_train: int, has_train_set: bool) -> Run:
    # channels-last convolutions: the CPU's convolution kernels are faster in that layout
    model = model.to(world.device).to(memory_format=torch.channels_last)
    # Under torchrun DDP averages the gradients over ranks in backward; the batch size is per rank (the global batch
    # is world size x --batch-size). Evaluation and saving use `model`.
    net = DistributedDataParallel(model) if world.distributed else model
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    per_rank = math.ceil(n_train / world.size)  # DistributedSampler pads the last rank's share to this
    steps_per_epoch = math.ceil(per_rank / args.batch_size)
    total_steps = args.epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * s / total_steps)))
    run = Run(args, world, model, net, opt, sched, torch.Generator().manual_seed(args.seed + 7919 * world.rank), n_train,
              per_rank, steps_per_epoch)
    if world.distributed and has_train_set:
        run.sampler = DistributedSampler(range(n_train), num_replicas=world.size, rank=world.rank, shuffle=True, seed=args.seed)
    if args.objective == "factor-vae":
        run.critic = TCDiscriminator(args.latent_dim).to(world.device)
        run.critic_opt = torch.optim.Adam(run.critic.parameters(), lr=args.critic_lr, betas=(0.5, 0.9))  # Kim & Mnih's
    return run


def batches(run: Run, train, epoch: int):
    """-> (x, y or None) for each step of this rank's share of an epoch"""
    args, world = run.args, run.world
    if train is None:  # generated afresh: each rank its own sprites
        factors = sample_factors(run.per_rank, rng=args.seed * 1000 + epoch + 10**6 * world.rank)
    elif run.sampler is not None:  # this rank's share of one shuffle that every rank agrees on
        run.sampler.set_epoch(epoch)
        perm = torch.tensor(list(run.sampler))
    else:
        perm = torch.randperm(run.n_train, generator=run.gen)
    for b in range(run.steps_per_epoch):
        if train is None:
            yield generate(factors[b * args.batch_size : (b + 1) * args.batch_size]), None
        else:
            idx = perm[b * args.batch_size : (b + 1) * args.batch_size]
            y = train.labels[idx].to(world.device) if args.conditional or args.supervised_factors else None
            if run.pairs is not None:  # (the face's values, its changed pair, the pair's values)
                y = (y, _pixels(run.pairs.images[idx]), run.pairs.axes[idx].to(world.device))
            yield _pixels(train.images[idx]), y


def _pixels(images: torch.Tensor) -> torch.Tensor:
    """stored images -> float in [0, 1] (faces are kept as bytes until used)"""
    return images.float().div_(255.0) if images.dtype == torch.uint8 else images


def _on_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    return x.to(device).contiguous(memory_format=torch.channels_last)


def train_step(run: Run, x, y, sums: dict) -> tuple:
    """One optimiser step on a batch (and the critic's for FactorVAE) -> (loss, the KL weight used)"""
    args = run.args
    x = binarize(x, run.gen) if args.binarize else x
    x = _on_device(x, run.world.device)
    warm = min(1.0, run.step / max(1.0, args.warmup_epochs * run.steps_per_epoch))
    beta = args.beta * warm
    if args.objective == "beta-tcvae":
        dataset_size = FACTORS.n_images if args.dataset == "dsprites" else run.n_train
        # the minibatch estimate of the TC uses this rank's batch only (B = --batch-size): not gathered
        loss, outp = beta_tcvae_loss(run.net, x, args.beta, dataset_size, anneal=warm)
    elif args.objective == "factor-vae":
        loss, outp, tc = factor_vae_loss(run.net, run.critic, x, args.beta, anneal=warm)
        sums["tc"] += tc.item() * len(x)
    elif args.supervised_factors:
        from vae_demo.datasets.face_targets import FACTOR_STD  # python-avatars: only when the faces are used

        pairs = None
        if run.pairs is not None:  # which faces of the batch are decoded as their changed pair
            y, changed, changed_axes = y
            use = torch.rand(len(x), generator=run.gen) < args.changed_pairs
            pairs = (_on_device(changed, x.device), changed_axes, use.to(x.device))
        # one process: the model's parts are called
        loss, outp = supervised_loss(run.model, x, y, FACTOR_STD, beta, pairs=pairs)
    else:
        outp = run.net(x, compute_loss=True, beta=beta, **({"y": y} if args.conditional else {}))
        loss = outp.loss
    run.opt.zero_grad(set_to_none=True)
    loss.backward()
    run.opt.step()
    for _ in range(args.critic_steps if args.objective == "factor-vae" else 0):
        # then the critic learns from the same z, shuffled afresh each time (the VAE's step left it grads)
        run.critic_opt.zero_grad(set_to_none=True)
        critic_loss(run.critic, outp.z, run.gen).backward()
        distributed.average_gradients(run.world, run.critic)  # each rank's critic sees its own z; they stay one critic
        run.critic_opt.step()
    run.sched.step()
    run.step += 1
    n = len(x)
    sums["n"] += n
    sums["loss"] += loss.item() * n
    sums["rec"] += outp.rec_loss.sum().item()
    sums["kl"] += outp.kl.sum().item()
    return loss, beta


def train_epoch(run: Run, train, epoch: int, last: int) -> tuple:
    """-> (the epoch's sums over every rank's images, the KL weight it ended on)"""
    run.model.train()
    sums = {"n": 0.0, "loss": 0.0, "rec": 0.0, "kl": 0.0, **({"tc": 0.0} if run.args.objective == "factor-vae" else {})}
    bar = tqdm(batches(run, train, epoch), total=run.steps_per_epoch, desc=f"epoch {epoch}/{last}", leave=False,
               mininterval=5, disable=not run.world.main)
    beta = 0.0
    for x, y in bar:
        loss, beta = train_step(run, x, y, sums)
        bar.set_postfix(loss=f"{loss.item():.1f}", refresh=False)
    return distributed.sum_over_ranks(run.world, sums), beta  # every rank's images count


def main(argv=None) -> None:
    args = parse_args(argv)
    commands, log = history(args, argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.conditional and (args.dataset == "dsprites" or args.objective != "elbo"):
        raise SystemExit("--conditional trains the ELBO on mnist or fashion-mnist (labelled data).")
    if args.supervised_factors and (args.dataset != "faces" or args.objective != "elbo" or args.conditional):
        raise SystemExit("--supervised-factors trains the ELBO on faces (whose factors are known).")
    world = distributed.start(pick_device(args.device))  # one process, or one rank of a torchrun job
    if args.changed_pairs and not (args.supervised_factors and 0 < args.changed_pairs <= 1):
        raise SystemExit("--changed-pairs is a fraction in (0, 1] of the batch, with --supervised-factors.")
    if args.supervised_factors and world.distributed:
        raise SystemExit("--supervised-factors trains in one process (it calls the model's encoder and decoder itself).")
    torch.manual_seed(args.seed)  # the same initial weights on every rank (DDP also broadcasts rank 0's)
    out = Path(args.out)
    if world.main:
        out.mkdir(parents=True, exist_ok=True)
    train, test, n_train = load_data(args, world, out)
    run = start_run(args, world, build_model(args, test), n_train, train is not None)
    run.pairs = load_pairs(args, n_train)
    model, first = run.model, len(log) + 1
    last = first + args.epochs - 1
    for epoch in range(first, last + 1):
        t0 = time.time()
        sums, beta = train_epoch(run, train, epoch, last)
        row = {"epoch": epoch, **({"continued_at": first} if epoch == first and first > 1 else {}), "beta": beta,
               "lr": run.sched.get_last_lr()[0], "device": str(world.device), "world_size": world.size}
        row.update({f"train_{k}": v / sums["n"] for k, v in sums.items() if k != "n"})
        if not world.main:  # rank 0 evaluates and writes; the others wait for it at the next epoch's first backward
            continue
        eval_images = test.images[: args.eval_size] if args.eval_size else test.images
        row.update(evaluate_elbo(model, eval_images, labels=test.labels[: len(eval_images)]))
        row["seconds"] = time.time() - t0
        row["images_per_second"] = sums["n"] / row["seconds"]
        log.append(row)
        tqdm.write(f"epoch {epoch}: train loss {row['train_loss']:.2f} | test ELBO {row['test_elbo']:.2f} "
                   f"(rec {row['test_rec']:.2f}, KL {row['test_kl']:.2f}) | {row['seconds']:.0f}s")
        model.eval()
        save_epoch(out, model, args, log, commands, planned=last)
    if world.main:
        stats = latent_statistics(model, test.images, test.labels)
        (out / "latent_stats.json").write_text(json.dumps(stats, indent=1))
        print(f"saved {out} (test ELBO {log[-1]['test_elbo']:.2f})")
    distributed.barrier(world)
    distributed.stop(world)


if __name__ == "__main__":
    main()
