"""Pictures that explain a model: posterior per dimension, training curves, the latent map.

Drawn with matplotlib's Agg backend into PIL images (no display needed, thread-safe with the lock).
"""

import threading
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from PIL import Image, ImageFont

_LOCK = threading.Lock()  # matplotlib's text and font caches are shared; the app serves several users at once
INK, MUTED, ACCENT, PRIOR = "#1f2937", "#9ca3af", "#ea580c", "#6366f1"


class _Figures:
    """matplotlib's object-oriented API on an Agg canvas, without pyplot (as matplotlib advises for web servers): no
    global figure registry to lock or close, no backend to choose, and no pyplot import in a worker thread, which
    would race the backend switch Gradio makes in every event's thread."""

    @staticmethod
    def subplots(*args, figsize=None, dpi=None, **kw):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=figsize, dpi=dpi)
        FigureCanvasAgg(fig)
        return fig, fig.subplots(*args, **kw)

    @staticmethod
    def get_cmap(name: str):
        from matplotlib import colormaps

        return colormaps[name]


def _plt() -> _Figures:
    return _Figures()


def _to_pil(fig) -> Image.Image:
    """Render: the Agg canvas's pixels straight into PIL (no PNG round trip)."""
    fig.canvas.draw()
    return Image.fromarray(np.asarray(fig.canvas.buffer_rgba())).convert("RGB")


def _label_font(size: int):
    """matplotlib's DejaVu Sans (it has Greek: the labels say ρ), else Pillow's default font."""
    import os

    import matplotlib

    try:
        return ImageFont.truetype(os.path.join(matplotlib.get_data_path(), "fonts", "ttf", "DejaVuSans.ttf"), size)
    except OSError:
        try:
            return ImageFont.load_default(size=size)
        except TypeError:  # Pillow without FreeType sizes
            return ImageFont.load_default()


def posterior_chart(mu: Sequence[float], sigma: Sequence[float], kl: Sequence[float], order: Optional[Sequence[int]] = None) -> Image.Image:
    """Per latent dimension (in `order`): mu with a +-sigma bar against the prior N(0, 1), and KL below."""
    plt = _plt()
    mu, sigma, kl = map(np.asarray, (mu, sigma, kl))
    order = np.asarray(order if order is not None else range(len(mu)))
    x = np.arange(len(order))
    with _LOCK:
        fig, (a1, a2) = plt.subplots(2, 1, figsize=(7.2, 4.2), dpi=100, sharex=True, gridspec_kw={"height_ratios": [3, 2]})
        a1.axhspan(-1, 1, color=PRIOR, alpha=0.08, lw=0)
        a1.axhline(0, color=PRIOR, lw=0.8, alpha=0.6)
        a1.errorbar(x, mu[order], yerr=sigma[order], fmt="o", ms=3.5, color=ACCENT, ecolor=INK, elinewidth=1, capsize=2)
        a1.set_ylabel("μ ± σ")
        a1.set_title("q(z|x) per dimension (shaded: the prior's ±1σ)", fontsize=10, loc="right")
        a2.bar(x, kl[order], color=[ACCENT if k > 0.05 else MUTED for k in kl[order]])
        a2.set_ylabel("KL (nats)")
        a2.set_xticks(x, [f"z{d}" for d in order], rotation=90, fontsize=7)
        a2.set_xlabel("latent dimension, most informative first (grey: ignored, q(z|x) ≈ prior)")
        for a in (a1, a2):
            a.spines[["top", "right"]].set_visible(False)
        fig.subplots_adjust(left=0.1, right=0.98, top=0.93, bottom=0.2, hspace=0.08)  # fixed: tight_layout cost ~1/3 of the chart
        return _to_pil(fig)


def training_curves(log: list) -> Image.Image:
    """training_log.json rows -> reconstruction, KL and ELBO per epoch (train and test); a dotted line marks
    where a run continued an earlier checkpoint (`train --init-from`, often with a new beta or objective)."""
    plt = _plt()
    ep = [r["epoch"] for r in log]
    stages = [r["epoch"] - 0.5 for r in log if r.get("continued_at")]
    with _LOCK:
        fig, axes = plt.subplots(1, 3, figsize=(10, 3.2), dpi=100)
        for ax, (key, title) in zip(axes, [("rec", "reconstruction −log p(x|z)"), ("kl", "KL(q(z|x) ‖ p(z))"), ("elbo", "ELBO")]):
            if key == "elbo":
                train = [-(r["train_rec"] + r["train_kl"]) for r in log]
            else:
                train = [r[f"train_{key}"] for r in log]
            ax.plot(ep, train, color=MUTED, label="train")
            ax.plot(ep, [r[f"test_{key}"] for r in log], color=ACCENT, label="test")
            for i, x in enumerate(stages):
                ax.axvline(x, color=MUTED, linestyle=":", linewidth=1, label="continued" if i == 0 else None)
            ax.set_title(title + " (nats)", fontsize=10)
            ax.set_xlabel("epoch")
            ax.spines[["top", "right"]].set_visible(False)
        axes[0].legend(frameon=False)
        fig.tight_layout()
        return _to_pil(fig)


def loss_terms_chart(rows: list, beta: float, seconds: Optional[float] = None) -> Image.Image:
    """A training run's rows ({"t", "rec", "kl"}: seconds, nats per image) -> the two terms of the loss side by side,
    each on its own scale, so that a KL that grows while the reconstruction falls is seen as the trade it is."""
    plt = _plt()
    t = [r["t"] for r in rows]
    with _LOCK:
        fig, axes = plt.subplots(1, 2, figsize=(8, 2.6), dpi=100)
        for ax, key, title, colour in ((axes[0], "rec", "reconstruction −log p(x|z)", ACCENT),
                                       (axes[1], "kl", f"KL(q(z|x) ‖ p(z)), weighted by β = {beta:g}", PRIOR)):
            ax.plot(t, [r[key] for r in rows], color=colour, linewidth=1.5)
            if rows:
                ax.annotate(f"{rows[-1][key]:.1f}", (t[-1], rows[-1][key]), fontsize=9, color=colour,
                            xytext=(3, 0), textcoords="offset points", va="center")
            ax.set_title(title + " (nats)", fontsize=10)
            ax.set_xlabel("seconds of training")
            if seconds:
                ax.set_xlim(0, seconds * 1.08)
            ax.spines[["top", "right"]].set_visible(False)
        fig.subplots_adjust(left=0.08, right=0.97, top=0.88, bottom=0.2, wspace=0.25)
        return _to_pil(fig)


@dataclass
class LatentMap:
    """A scatter of the test set's latent means in 2-D, with the pixel <-> map-coordinate transform."""

    image: Image.Image
    xlim: tuple
    ylim: tuple
    box: tuple  # (left, top, right, bottom) of the axes in image pixels

    def to_pixel(self, u: float, v: float) -> tuple:
        l, t, r, b = self.box
        return l + (u - self.xlim[0]) / (self.xlim[1] - self.xlim[0]) * (r - l), b - (v - self.ylim[0]) / (self.ylim[1] - self.ylim[0]) * (b - t)

    def from_pixel(self, px: float, py: float) -> tuple:
        l, t, r, b = self.box
        return self.xlim[0] + (px - l) / (r - l) * (self.xlim[1] - self.xlim[0]), self.ylim[0] + (b - py) / (b - t) * (self.ylim[1] - self.ylim[0])

    def marked(self, points: list) -> Image.Image:
        """Copy of the map with markers: [(u, v, colour), ...] drawn as rings."""
        from PIL import ImageDraw

        img = self.image.copy()
        d = ImageDraw.Draw(img)
        for u, v, colour in points:
            x, y = self.to_pixel(u, v)
            for r, w in ((9, 4), (9, 2)):
                d.ellipse([x - r, y - r, x + r, y + r], outline="white" if w == 4 else colour, width=w)
        return img


def latent_map(points: np.ndarray, labels: np.ndarray, class_names: Sequence[str], axis_names=("PC 1", "PC 2")) -> LatentMap:
    """(N, 2) projected latent means and (N,) labels -> a coloured scatter with a legend."""
    plt = _plt()
    with _LOCK:
        fig, ax = plt.subplots(figsize=(6.4, 5.6), dpi=100)
        cmap = plt.get_cmap("tab10")
        for c, name in enumerate(class_names):
            sel = labels == c
            ax.scatter(points[sel, 0], points[sel, 1], s=3, alpha=0.5, color=cmap(c % 10), label=str(name), rasterized=True)
        pad = 0.05
        lo, hi = np.percentile(points, 0.5, axis=0), np.percentile(points, 99.5, axis=0)
        span = hi - lo
        ax.set_xlim(lo[0] - pad * span[0], hi[0] + pad * span[0])
        ax.set_ylim(lo[1] - pad * span[1], hi[1] + pad * span[1])
        ax.set_xlabel(axis_names[0])
        ax.set_ylabel(axis_names[1])
        ax.legend(markerscale=4, fontsize=8, frameon=False, loc="center left", bbox_to_anchor=(1.0, 0.5))
        ax.spines[["top", "right"]].set_visible(False)
        fig.tight_layout()
        fig.canvas.draw()
        bbox = ax.get_window_extent()
        h = fig.get_size_inches()[1] * fig.dpi
        box = (bbox.x0, h - bbox.y1, bbox.x1, h - bbox.y0)
        xlim, ylim = ax.get_xlim(), ax.get_ylim()
        return LatentMap(image=_to_pil(fig), xlim=tuple(xlim), ylim=tuple(ylim), box=box)


def labelled_grid(t, ncol: int, row_labels: Sequence[str], scale: int = 2, label_width: int = 150,
                  axis: Optional[tuple] = ("-3", "0", "+3")) -> Image.Image:
    """(R * ncol, C, H, W) in [0, 1] -> one image, a row per label, the label written on the left; `axis`: what the
    left, middle and right columns stand for, written under them (None: nothing)."""
    from PIL import ImageDraw

    from vae_demo.imaging.render import grid

    body = grid(t, nrow=ncol, padding=2, scale=scale, pad_value=1.0).convert("RGB")
    rows = max(1, len(row_labels))
    font = _label_font(14)
    label_width = max([label_width] + [int(font.getlength(lab)) + 12 for lab in row_labels])  # room for the longest
    canvas = Image.new("RGB", (body.width + label_width, body.height + (22 if axis else 0)), "white")
    canvas.paste(body, (label_width, 0))
    d = ImageDraw.Draw(canvas)
    row_h = body.height / rows
    for i, lab in enumerate(row_labels):
        d.text((6, i * row_h + row_h / 2), lab, fill=INK, font=font, anchor="lm")
    if axis:
        d.text((label_width + 4, body.height + 11), axis[0], fill=INK, font=font, anchor="lm")
        d.text((label_width + body.width // 2, body.height + 11), axis[1], fill=INK, font=font, anchor="mm")
        d.text((canvas.width - 4, body.height + 11), axis[2], fill=INK, font=font, anchor="rm")
    return canvas


def rate_distortion_chart(models: Sequence[dict], current: Optional[Sequence[dict]] = None) -> Image.Image:
    """The rate-distortion plane of Alemi et al. 2018 ("Fixing a Broken ELBO"): each model of a beta family at its
    test-set rate (KL, nats) and distortion (reconstruction term, nats), joined in order of beta; the current image's
    own (rate, distortion) under each model marked beside them. models/current: [{"beta", "rate", "distortion"}]."""
    plt = _plt()
    with _LOCK:
        fig, ax = plt.subplots(figsize=(4.6, 3.6), dpi=100)
        r = [m["rate"] for m in models]
        d = [m["distortion"] for m in models]
        ax.plot(r, d, "-o", color=INK, lw=1.5, ms=5, label="test set (mean)", zorder=2)
        for m in models:
            ax.annotate(f"β={m['beta']:g}", (m["rate"], m["distortion"]), textcoords="offset points", xytext=(6, 4),
                        fontsize=8, color=INK)
        if current:
            ax.plot([c["rate"] for c in current], [c["distortion"] for c in current], "--*", color=ACCENT, ms=9, lw=1,
                    label="this image", zorder=3)
        lo = min(r + [c["rate"] for c in current or []])
        hi = max(r + [c["rate"] for c in current or []])
        h = min(x + y for x, y in zip(r, d))
        xs = np.linspace(max(0.0, lo * 0.8), hi * 1.1, 50)
        ax.plot(xs, h - xs, ":", color=MUTED, lw=1, label="same ELBO as the best")
        ax.set_xlabel("rate: KL(q(z|x) ‖ p(z)), nats")
        ax.set_ylabel("distortion: −E log p(x|z), nats")
        top = max(d + [c["distortion"] for c in current or []])
        ax.set_ylim(0, top * 1.1)
        ax.legend(fontsize=7, frameon=False, loc="upper right")
        ax.grid(alpha=0.25)
        fig.tight_layout()
        return _to_pil(fig)
