"""Command line: the app's operations without a browser.

    python -m vae_demo reconstruct digit.png -o rec.png
    python -m vae_demo sample -n 16 --seed 0 -o grid.png
    python -m vae_demo interpolate a.png b.png --steps 8 -o anim.gif
    python -m vae_demo edit digit.png --attribute thickness --amount 2 -o thick.png
    python -m vae_demo analogy digit.png -o every_digit.png            # with --model mnist-cvae (the default here)
    python -m vae_demo betas digit.png -o betas.png                    # the bundled mnist-beta-* models side by side
    python -m vae_demo impute digit.png --mask "bottom half" -o filled.png   # or --mask mask.png (white = missing)
    python -m vae_demo bits digit.png                                  # what the image costs under the model
    python -m vae_demo augment --per-class 100 -o digits.zip           # with --model mnist-cvae (the default here)
    python -m vae_demo models
"""

import argparse
import json
import sys

import torch
from tqdm import tqdm

from vae_demo.serving import edits, inference
from vae_demo.device import DEVICE_CHOICES, pick_device
from vae_demo.imaging.render import grid, save_gif, to_pil
from vae_demo.hub.loading import bundled_models, load_vae
from vae_demo.errors import USER_ERRORS


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m vae_demo", description="See what a variational autoencoder does.")
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp):
        sp.add_argument("--model", default="mnist", help="bundled name, local folder or Hub repo id (default: mnist)")
        sp.add_argument("--revision", default=None, help="Hub revision (branch, tag or commit) for a repo id")
        sp.add_argument("--device", choices=DEVICE_CHOICES, default="auto")
        return sp

    r = common(sub.add_parser("reconstruct", help="encode and decode an image"))
    r.add_argument("input")
    r.add_argument("-o", "--output", required=True, help="PNG: input as the model sees it | reconstruction side by side")
    r.add_argument("--no-frame", dest="frame", action="store_false",
                   help="do not frame the image like the training data (a drawn digit cropped, fitted and centred by mass)")
    s = common(sub.add_parser("sample", help="decode random z ~ N(0, T^2 I) into a grid"))
    s.add_argument("-n", type=int, default=16)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--temperature", type=float, default=1.0)
    s.add_argument("-o", "--output", required=True)
    i = common(sub.add_parser("interpolate", help="walk the latent space from image A to image B"))
    i.add_argument("a")
    i.add_argument("b")
    i.add_argument("--steps", type=int, default=8)
    i.add_argument("--method", choices=["lerp", "slerp"], default="lerp")
    i.add_argument("-o", "--output", required=True, help=".gif for an animation, anything else for a strip PNG")
    e = common(sub.add_parser("edit", help="move an image's code along a named knob (thickness, slant, towards a class)"))
    e.add_argument("input")
    e.add_argument("--attribute", required=True, help="a name `models` lists under attributes, e.g. thickness, slant, sneaker")
    e.add_argument("--amount", type=float, default=2.0, help="standard deviations along the knob")
    e.add_argument("-o", "--output", required=True, help="PNG: reconstruction | edited side by side")
    a = common(sub.add_parser("analogy", help="a conditional model writes the digit as every digit, 0 to 9"))
    a.set_defaults(model="mnist-cvae")
    a.add_argument("input")
    a.add_argument("--label", default=None, help="the input's label (default: what the classifier reads)")
    a.add_argument("-o", "--output", required=True)
    b = sub.add_parser("betas", help="one image through the bundled models that differ only in beta")
    b.add_argument("input")
    b.add_argument("--device", choices=DEVICE_CHOICES, default="auto")
    b.add_argument("-o", "--output", required=True, help="PNG: input | reconstruction per beta; the chart beside it")
    f = common(sub.add_parser("impute", help="fill in the missing part of an image (data imputation)"))
    f.add_argument("input")
    f.add_argument("--mask", default="bottom half", help="a preset (bottom half, top half, left half, right half, centre "
                   "square, random 50%%) or a picture (white, or painted on a transparent layer = missing)")
    f.add_argument("--method", default="metropolis", help="metropolis, pseudo-gibbs, pca or mean")
    f.add_argument("-n", type=int, default=8)
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--steps", type=int, default=None, help="Markov chain steps (metropolis, pseudo-gibbs)")
    f.add_argument("-o", "--output", required=True, help="PNG: the masked input, then the completions")
    c = common(sub.add_parser("bits", help="what an image costs in bits under the model (and its PNG)"))
    c.add_argument("input")
    for sp in (f, c):
        sp.add_argument("--no-frame", dest="frame", action="store_false", help="do not frame the image like the training data")
    g = common(sub.add_parser("augment", help="a conditional model writes a labelled dataset (a zip)"))
    g.set_defaults(model="mnist-cvae")
    g.add_argument("--per-class", type=int, default=100)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("-o", "--output", required=True, help="the zip to write")
    sub.add_parser("models", help="list the bundled models")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.command == "models":
        print("\n".join(bundled_models()))
        return 0
    try:
        steps = tqdm(total=2, desc=args.command, leave=False, disable=not sys.stderr.isatty())
        if args.command == "betas":
            return _betas(args)
        vae = load_vae(args.model, device=pick_device(args.device), revision=args.revision)
        steps.update()
        if args.command in ("impute", "bits", "augment"):
            _applications(args, vae, steps)
        elif args.command == "edit":
            after, before, info = edits.edit(vae, args.input, args.attribute, args.amount)
            grid(torch.cat([before, after]), nrow=2, scale=4).save(args.output)
            print(json.dumps(info, indent=1))
        elif args.command == "analogy":
            tiles, label, how = edits.analogy(vae, args.input, args.label)
            grid(tiles, nrow=len(tiles), scale=3).save(args.output)
            print(json.dumps({"label": label, "label_from": how}))
        elif args.command == "reconstruct":
            rec = inference.reconstruct(vae, args.input, frame=args.frame)
            grid(torch.cat([rec.input, rec.reconstruction]), nrow=2, scale=4).save(args.output)
            print(json.dumps({k: v for k, v in rec.metrics.items()}, indent=1))
        elif args.command == "sample":
            grid(inference.sample(vae, args.n, args.seed, args.temperature), nrow=8, scale=2).save(args.output)
        else:
            frames = inference.interpolate(vae, args.a, args.b, args.steps, args.method)
            if args.output.lower().endswith(".gif"):
                save_gif([to_pil(f, 4) for f in frames], args.output)
            else:
                grid(frames, nrow=len(frames), scale=2).save(args.output)
        steps.update()
        steps.close()
    except (*USER_ERRORS, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if getattr(args, "output", None):
        print(f"wrote {args.output}", file=sys.stderr)
    return 0


def _applications(args, vae, steps) -> None:
    """impute, bits, augment: what VAEs are for"""
    from vae_demo.serving import augment, fill_in

    if args.command == "impute":
        row, info, _ = fill_in.impute(vae, args.input, args.mask, args.method, args.n, args.seed, args.steps,
                                        args.frame)
        row.save(args.output)
        print(json.dumps({k: v for k, v in info.items() if k != "completions"}, indent=1))
    elif args.command == "bits":
        from vae_demo.analysis.bits import image_bits

        x, _ = inference.framed_tensor(vae, args.input, args.frame)
        print(json.dumps(image_bits(vae, x, y=inference.condition(vae, x)), indent=1))
    else:
        import shutil
        import tempfile

        bar = tqdm(total=100, desc="augment", leave=False, disable=not sys.stderr.isatty())
        with tempfile.TemporaryDirectory() as tmp:
            path, _, info = augment.augment(vae, args.per_class, args.seed, tmp,
                                            progress=lambda f, what: bar.update(round(100 * f) - bar.n))
            shutil.move(path, args.output)
        bar.close()
        print(json.dumps(info, indent=1))


def _betas(args) -> int:
    from PIL import Image

    from vae_demo.serving.service import DemoService

    names = [m for m in bundled_models() if m.startswith("mnist-beta-")]
    recon, chart, _, table = DemoService.from_sources(names, pick_device(args.device)).compare_betas(args.input)
    out = Image.new("RGB", (recon.width + chart.width, max(recon.height, chart.height)), "white")
    out.paste(recon.convert("RGB"), (0, 0))
    out.paste(chart, (recon.width, 0))
    out.save(args.output)
    print(json.dumps(table, indent=1))
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
