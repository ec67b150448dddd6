"""What the faces VAE keeps, read by the face reader: issue #26's floors on held-out faces.

    python benchmarks/faces.py [--model faces] [--data-root ../data] [--n 2000] [--pictures docs]

- Reconstructions keep the factors: the reader's reading of decode(μ) against each face's true labels (skin tone,
  glasses, beard; smile over the faces whose mouth is in one of its two groups), beside the reader on the faces
  themselves (its own accuracy: the ceiling).
- Samples look like faces: of 64 prior samples, the share the reader gives a skin tone with ≥ 50 % confidence, and
  how much they differ from each other.
Prints JSON. With --pictures DIR, also draws docs/FACES.md's pictures there: held-out faces with the VAE's and PCA's
reconstructions, 64 prior samples, an interpolation, the eigenfaces beside the VAE's axes, and a grid per knob.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from vae_demo import load_vae  # noqa: E402
from vae_demo.datasets.faces import load_faces, to_tensor  # noqa: E402
from vae_demo.hub.loading import CHECKPOINTS_DIR  # noqa: E402
from vae_demo.models.classifier import load_classifier  # noqa: E402
from vae_demo.models.face_reader import HEADS, read  # noqa: E402
from vae_demo.training.face_reader import face_labels  # noqa: E402


def agreement(probs: dict, y: torch.Tensor) -> dict:
    out = {}
    for j, (name, _) in enumerate(HEADS):
        keep = y[:, j] >= 0
        out[name] = round(float((probs[name].argmax(1)[keep] == y[keep, j]).float().mean()), 4)
    return out


def renders_with_skin_moved(reader, rows: list, y: torch.Tensor, amount: int = 2) -> float:
    """The ceiling of any skin-tone knob: each face (its labels.csv row and face_labels) rendered again with its skin
    `amount` tones darker and lighter (clamped to the seven), everything else as drawn; the share whose other three
    factors the reader reads at both ends as on the face itself (smile over the faces whose mouth is in one of its
    groups), as face_knobs measures a knob's "others kept" on the decoder's faces."""
    from vae_demo.datasets.faces import FACTORS, SKIN_TONES, render_face
    from vae_demo.models.face_reader import FACTORS as READ
    from vae_demo.training.face_knobs import read_alike_at_both_ends

    skins = list(dict(FACTORS)["skin_color"])
    faces = []
    for a in (0, amount, -amount):
        for row, tone in zip(rows, y[:, READ.index("skin_tone")].tolist()):
            moved = SKIN_TONES[min(len(SKIN_TONES) - 1, max(0, tone + a))]
            faces.append(render_face({**{name: int(row[f"{name}_idx"]) for name, _ in FACTORS},
                                      "skin_color": skins.index(moved)}))
    probs = read(reader, to_tensor(np.stack(faces)))
    kept = torch.ones(len(rows), dtype=torch.bool)
    for name in ("glasses", "smile", "beard"):
        kept &= read_alike_at_both_ends(probs, name, len(rows)) | (y[:, READ.index(name)] < 0)
    return round(float(kept.float().mean()), 4)


@torch.inference_mode()
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="faces", help="bundled model name or a checkpoint folder trained on faces")
    p.add_argument("--data-root", default="../data")
    p.add_argument("--n", type=int, default=2000, help="held-out faces")
    p.add_argument("--pictures", default=None, help="folder to draw docs/FACES.md's pictures in")
    args = p.parse_args(argv)
    vae, reader = load_vae(args.model), load_classifier(CHECKPOINTS_DIR / "classifiers" / "faces")
    images, rows = load_faces(Path(args.data_root) / "faces-test", mmap=False)
    x, y = to_tensor(images[: args.n]), face_labels(rows[: args.n])
    rec = torch.cat([vae.decode(vae.encode(x[i : i + 500])[0]) for i in range(0, len(x), 500)])
    samples = vae.decode(torch.randn(64, vae.config.latent_dim, generator=torch.Generator().manual_seed(0)))
    skin = read(reader, samples)["skin_tone"].max(1).values
    spread = (samples[:, None] - samples[None]).pow(2).flatten(2).mean(2)
    result = {
        "n": len(x),
        "reader_on_the_faces": agreement(read(reader, x), y),
        "reader_on_the_reconstructions": agreement(read(reader, rec), y),
        "samples_skin_confident": round(float((skin >= 0.5).float().mean()), 4),
        "samples_mean_pairwise_mse": round(float(spread[~torch.eye(64, dtype=torch.bool)].mean()), 4),
        "renders_with_skin_moved_2_tones_others_kept": renders_with_skin_moved(reader, rows[:1000], y[:1000]),
    }
    result["served"] = served(args.model, vae, reader, x, y, rec)
    print(json.dumps(result, indent=1))
    if args.pictures:
        pictures(vae, x[:8], rec[:8], Path(args.pictures))
    return 0


def served(model: str, vae, reader, x: torch.Tensor, y: torch.Tensor, rec: torch.Tensor) -> dict:
    """The same measures on what the app serves: the model as the serving registry loads it and the reader the app's
    verdicts use, in bfloat16 where this CPU multiplies it natively (vae_demo/device.py) and the model allows it.
    The float32 reader judges the served reconstructions; the served reader's words are compared with the float32
    reader's on the faces and on their reconstructions; /reconstruct's metrics are compared on 200 faces."""
    from PIL import Image

    from vae_demo.device import serve_in_bf16
    from vae_demo.models.face_reader import describe, reader_for
    from vae_demo.serving import inference
    from vae_demo.serving.edits import directions_of
    from vae_demo.serving.registry import ModelRegistry
    from vae_demo.training.face_knobs import edit_test

    served_vae = ModelRegistry(torch.device("cpu")).load(model)
    served_reader = reader_for("faces", "cpu", serving=True)
    bf16 = bool(served_vae.config.serve_bf16 and serve_in_bf16("cpu"))
    served_rec = torch.cat([served_vae.decode(served_vae.encode(x[i : i + 500])[0]) for i in range(0, len(x), 500)])

    def same_words(images: torch.Tensor) -> float:
        ref = [w for _, w in describe(read(reader, images))]
        got = [w for _, w in describe(read(served_reader, images))]
        return round(sum(a == b for a, b in zip(ref, got)) / len(ref), 4)

    # /reconstruct's metrics, served against float32. The ELBO is compared in nats and against its spread over the
    # faces, not relative to itself: a Gaussian density with a small sigma puts some faces' ELBO near 0.
    elbo, elbo_gap, mse_gap, anomaly_gap = [], [], [], []
    for i in range(200):
        face = Image.fromarray((x[i].permute(1, 2, 0) * 255).round().byte().numpy())  # an upload, as the API gets it
        a = inference.reconstruct(vae, face, n_posterior=1).metrics
        b = inference.reconstruct(served_vae, face, n_posterior=1).metrics
        elbo.append(a["elbo"])
        elbo_gap.append(abs(a["elbo"] - b["elbo"]))
        mse_gap.append(abs(a["mse"] - b["mse"]) / max(a["mse"], 1e-12))
        anomaly_gap.append(abs(a["anomaly_percentile"] - b["anomaly_percentile"]))

    knobs = {}
    for d in directions_of(served_vae):
        if d.kind == "factor":
            a, b = edit_test(vae, reader, d, x, 2.0, y=y), edit_test(served_vae, reader, d, x, 2.0, y=y)
            knobs[d.name] = {k: [round(a[k], 4), round(b[k], 4)] for k in ("right_direction", "others_kept")}

    return {
        "precision": "bfloat16" if bf16 else "float32",
        "knobs_at_2_float32_then_served": knobs,
        "served_reader_on_the_served_reconstructions": agreement(read(served_reader, served_rec), y),
        "reader_on_the_served_reconstructions": agreement(read(reader, served_rec), y),
        "pixels_mean_abs_difference_from_float32": round(float((served_rec - rec).abs().mean()), 5),
        "pixels_max_abs_difference_from_float32": round(float((served_rec - rec).abs().max()), 4),
        "served_reader_words_as_float32_on_the_faces": same_words(x),
        "served_reader_words_as_float32_on_the_reconstructions": same_words(rec),
        "reconstruct_elbo_spread_over_the_faces_nats": round(float(np.std(elbo)), 1),
        "reconstruct_elbo_mean_abs_difference_nats": round(float(np.mean(elbo_gap)), 1),
        "reconstruct_elbo_largest_abs_difference_nats": round(float(np.max(elbo_gap)), 1),
        "reconstruct_anomaly_percentile_largest_difference_points": round(float(np.max(anomaly_gap)), 2),
        "reconstruct_mse_largest_relative_difference": round(max(mse_gap), 4),
    }


def pictures(vae, x: torch.Tensor, rec: torch.Tensor, out: Path) -> None:
    from vae_demo.analysis.evaluation_files import evaluation_of
    from vae_demo.imaging.charts import labelled_grid
    from vae_demo.serving.service import DemoService

    service = DemoService.from_sources(["faces"], torch.device("cpu"))
    pca = evaluation_of(vae).pca.reconstruct(x.flatten(1)).clamp(0, 1).view_as(x)
    labelled_grid(torch.cat([x, rec, pca]), len(x), ["held-out faces", "VAE: decode(μ)", f"PCA, k = {vae.config.latent_dim}"],
                  scale=2, axis=None).save(out / "faces_reconstructions.png")
    service.sample("faces", 64, 0)[0].save(out / "faces_samples.png")
    examples = service.examples("faces")
    service.interpolate(examples[0], examples[9], "faces", 10, "slerp")[0].save(out / "faces_interpolation.png")
    service.eigen("faces").save(out / "faces_eigen.png")
    for name, _ in service.knobs("faces"):
        service.knob_grid("faces", name, None, 4, 0)[0].save(out / f"faces_knob_{name}.png")


if __name__ == "__main__":
    sys.exit(main())
