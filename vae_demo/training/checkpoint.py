"""What a training run leaves in its folder (python -m vae_demo.training.train --out DIR), rewritten after every
epoch so that an interrupted run still leaves a usable checkpoint: config.json and model.safetensors, training_log.json,
train_commands.txt (every command that made it, a continuation's last) and the model card, README.md."""

import argparse
import json
import shlex
import sys
from pathlib import Path

import torch

from vae_demo.models.vae import VAE


def save_epoch(out: Path, model: VAE, args: argparse.Namespace, log: list, commands: list[str], planned: int) -> None:
    """The folder as it stands after an epoch: weights, the per-epoch log, the commands and the card."""
    save_checkpoint(model, out, args.weights_dtype)
    (out / "training_log.json").write_text(json.dumps(log, indent=1))
    (out / "train_commands.txt").write_text("\n".join(commands) + "\n")
    write_model_card(out, args, log, commands, planned)


def save_checkpoint(model: VAE, out: Path, dtype: str) -> None:
    """config.json + model.safetensors (in `dtype`: the weights of these small models lose nothing measurable in float16)."""
    from safetensors.torch import save_file

    model.save_pretrained(out)
    if dtype != "float32":
        state = {k: v.detach().to(getattr(torch, dtype)).contiguous().cpu() for k, v in model.state_dict().items()}
        save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})


def write_model_card(out: Path, args: argparse.Namespace, log: list, commands: list[str], planned: int) -> None:
    last = log[-1]
    lines = [
        "---",
        "library_name: vae-demo",
        "tags: [vae, variational-autoencoder, vae-demo]",
        "license: mit",
        "---",
        f"# {out.name}: a convolutional VAE trained on {args.dataset}",
        "",
        f"Trained by this project's own trainer on {args.dataset} "
        + ("(procedurally generated 64x64 binary sprites, a fresh sample of "
           f"{args.epoch_size:,} images every epoch), " if args.dataset == "dsprites" else
           "(60,000 cartoon faces, 64x64 RGB, made by `python -m vae_demo.datasets.faces --n 60000 --seed 0 --out "
           "DATA_ROOT/faces-train`; its held-out set with `--n 10000 --seed 1 --out DATA_ROOT/faces-test`), "
           if args.dataset == "faces" else "(60,000 training images, 28x28 grey), ")
        + ("dynamically binarized (each batch resampled, P(pixel = 1) = grey level), " if args.binarize else "")
        + ("a spatial broadcast decoder (Watters et al. 2019), " if args.decoder == "broadcast" else "")
        + ("conditional on the class label (a CVAE, Sohn et al. 2015: the encoder sees the image and its label, the decoder "
           "z and a label), " if args.conditional else "")
        + ("with its first seven latents supervised (skin tone, glasses, beard, smile, and which mouth, glasses and "
           "facial hair within their groups; Kingma et al. 2014's M2 with every label seen, the labels as values on an "
           "axis): in training the decoder reads each face's values there, plus N(0, 0.1^2) noise, and the model's axis "
           "reader learns to read them from the image (the KL to N(value, 0.1^2)); the other latents' prior is N(0, 1). "
           "Each named factor has an axis of its own and the knobs move along it. " if args.supervised_factors else "")
        + (f"{args.changed_pairs:.0%} of each batch is decoded as its counterfactual pair: "
           + ("the same face with its facial hair, mouth, glasses or skin colour changed (DATA_ROOT/faces-train-changed, "
              "made by `python -m vae_demo.datasets.faces --n 60000 --seed 0 --changed`), "
              if args.changed_set == "faces-train-changed" else
              f"the same face with one part changed (DATA_ROOT/{args.changed_set}; its meta.json says which parts), ")
           + "drawn from the changed values on the axes and the face's own other latents, so the decoder takes each "
             "part from its axis, not from the other latents. " if args.changed_pairs else "")
        + ("The test ELBO decodes z ~ q(z|x) and measures the KL against N(0, I), the prior the app samples from, "
           if args.supervised_factors else "")
        + f"{args.likelihood} likelihood, latent size {args.latent_dim}, "
        + (f"beta-TCVAE objective (Chen et al. 2018) with total-correlation weight {args.beta}." if args.objective == "beta-tcvae"
           else f"FactorVAE objective (Kim & Mnih 2018): a loss of -ELBO + gamma * TC, gamma = {args.beta:g}, with the total "
                "correlation TC estimated by a critic network." if args.objective == "factor-vae" else f"beta = {args.beta}."),
        "",
        *([args.notes, ""] if args.notes else []),
        "## Reproduce",
        *(["Run these in order (each continues from the checkpoint the one before wrote):"] if len(commands) > 1 else []),
        "```bash",
        *commands,
        "```",
        f"Seed {args.seed}; Adam, learning rate {args.lr} with cosine decay, batch {args.batch_size}, "
        f"KL warm-up over {args.warmup_epochs:g} epochs.",
        "",
        "## Result",
        f"- epochs completed: {last['epoch']} of {planned}",
        f"- final test ELBO: {last['test_elbo']:.2f} nats per image "
        f"(reconstruction {last['test_rec']:.2f} + KL {last['test_kl']:.2f}); "
        + ("the test set is binarized once with seed 0" if args.binarize else
           "5,000 freshly generated test sprites" if args.dataset == "dsprites" else
           f"{args.eval_size or 10_000:,} held-out faces" if args.dataset == "faces" else "grey-level test set")
        + ("" if args.likelihood == "bernoulli" else " (a Gaussian density: positive values are normal, not comparable with nats of binary data)"),
        f"- training time: {sum(r['seconds'] for r in log) / 60:.1f} min on {last['device']}"
        + (f", {last['world_size']} processes (DistributedDataParallel, batch {args.batch_size} per process)"
           if last.get("world_size", 1) > 1 else ""),
        f"- world_size: {last.get('world_size', 1)}",
        "",
        "Per-epoch figures are in `training_log.json`. The weights are stored in "
        f"{args.weights_dtype} and cast to float32 when loaded.",
    ]
    (out / "README.md").write_text("\n".join(lines) + "\n")


def history(args, argv) -> tuple:
    """-> (the commands that made this checkpoint, this one last; the per-epoch log so far). A continuation
    (--init-from) starts from the earlier run's commands and log."""
    command = "python -m vae_demo.training.train " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    if not args.init_from:
        return [command], []
    init = Path(args.init_from)
    earlier = init / "train_commands.txt"
    commands = (earlier.read_text().splitlines() if earlier.is_file() else [f"# (commands of {init} unknown)"]) + [command]
    log = json.loads((init / "training_log.json").read_text()) if (init / "training_log.json").is_file() else []
    return commands, log
