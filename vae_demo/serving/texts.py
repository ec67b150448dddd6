"""The sentences the page shows next to each thing it explains. Plain Markdown; $...$ is LaTeX."""

INTRO = """# vae-demo — see what a variational autoencoder does
An **encoder** turns an image into a Gaussian in latent space (a mean μ and a spread σ per dimension); a
**decoder** turns a latent vector z back into an image. Training pulls every image's Gaussian towards the
prior N(0, I), so the latent space has no holes: you can reconstruct, sample, walk and turn knobs in it."""


def objective_label(objective: str, beta: float) -> str:
    """a few words for the model's summary line: "β = 1", "β-TCVAE, β = 6", "FactorVAE, γ = 35" """
    if objective == "beta-tcvae":
        return f"β-TCVAE, β = {beta:g}"
    if objective == "factor-vae":
        return f"FactorVAE, γ = {beta:g}"
    return f"β = {beta:g}"


def objective_note(objective: str, beta: float) -> str:
    """one sentence: what this model's training loss added to (or weighed in) the ELBO"""
    if objective == "beta-tcvae":
        return (f"trained as a β-TCVAE (Chen et al. 2018): the KL term splits into the information z keeps about x, the "
                f"*total correlation* between latent dimensions, and each dimension's own KL; only the total correlation is "
                f"weighted, by β = {beta:g}, which pushes each dimension towards one independent factor of the data.")
    if objective == "factor-vae":
        return (f"trained as a FactorVAE (Kim & Mnih 2018): the plain ELBO minus γ = {beta:g} times the *total "
                f"correlation* between latent dimensions, which a small critic network estimates by telling real codes "
                f"from codes whose dimensions were shuffled across a batch. Dependent dimensions cost extra, so each one "
                f"is pushed towards one independent factor of the data, while reconstruction keeps the plain VAE's weight.")
    if beta == 1:
        return "β = 1: the plain VAE, whose loss is a true bound on $\\log p(x)$."
    return f"β = {beta:g} > 1: a β-VAE, which trades reconstruction for a tidier, more disentangled latent space."


def how_it_works(latent_dim: int, beta: float, likelihood: str, dataset: str, objective: str = "elbo") -> str:
    """The loss and the reparameterization trick, with this model's own numbers."""
    rec = ("a Bernoulli per pixel: $-\\log p(x|z)$ is the binary cross-entropy" if likelihood == "bernoulli"
           else "a Gaussian per pixel: $-\\log p(x|z)$ is a scaled squared error")
    beta_note = objective_note(objective, beta)
    return f"""**Training maximises the evidence lower bound (ELBO)** for every training image x:

$$\\mathrm{{ELBO}}(x) = \\underbrace{{\\mathbb{{E}}_{{q(z|x)}}[\\log p(x|z)]}}_{{\\text{{reconstruction}}}} \\; - \\; \\beta \\cdot \\underbrace{{\\mathrm{{KL}}\\big(q(z|x)\\,\\|\\,\\mathcal{{N}}(0, I)\\big)}}_{{\\text{{regularizer}}}} \\;\\le\\; \\log p(x)$$

- **Encoder** → $q(z|x) = \\mathcal{{N}}(\\mu(x), \\sigma(x)^2)$, one mean and one spread per latent dimension.
- **Reparameterization trick**: sample $z = \\mu + \\sigma \\odot \\varepsilon$ with $\\varepsilon \\sim \\mathcal{{N}}(0, I)$, so the sampling
  step has no parameters and gradients flow through μ and σ.
- **Decoder** → $p(x|z)$: {rec}.
- **KL term**: in closed form, $\\tfrac12 \\sum_d (\\mu_d^2 + \\sigma_d^2 - 1 - \\log \\sigma_d^2)$. It is 0 only when q equals the
  prior; dimensions the decoder does not need are pushed all the way there and carry nothing.
- **Why samples look blurry**: the decoder predicts the *average* image consistent with a z (pixel probabilities),
  and a Gaussian posterior blurs nearby codes together.
- **Relation to PCA**: a linear encoder and decoder with a Gaussian likelihood recover PCA's subspace; the VAE's
  non-linear decoder and its prior are what let it generate. The Reconstruct tab shows the PCA baseline beside it.

This model: trained on **{dataset or 'unknown data'}**, latent size **{latent_dim}**, {beta_note}"""


RECONSTRUCT = """**Draw, upload or photograph an image: the reconstruction follows every stroke.** Your image is first
framed the way the training images were (for MNIST: cropped to the ink, fitted into 20 × 20 px and centred by mass
in 28 × 28) — turn *Frame like the training data* off to see why that matters.
**Encoder → μ, σ → z = μ + σ·ε → decoder.** The reconstruction decodes μ itself. The chart shows, per latent
dimension, where the encoder put this image (μ ± σ) against the prior, and what that costs in KL. The posterior
samples decode random z drawn around μ: their blur and variety are the uncertainty of q(z|x). A reconstruction
much worse than usual flags an image unlike the training data (anomaly detection by reconstruction error)."""

SAMPLE = """Because the KL term keeps every image's code close to N(0, I), the latent space is **complete**: a random
z ~ N(0, I) decodes to a plausible image. Temperature scales z — below 1 gives typical images, above 1 strange ones.
The same seed always gives the same images."""

INTERPOLATE = """The latent space is **continuous**: points between two codes decode to images between the two inputs.
**lerp** walks the straight line from μ_A to μ_B; **slerp** follows a great circle, keeping ‖z‖ near where Gaussian
samples actually live (a straight line through the middle passes close to the origin, an unusually "average" code)."""

SLIDERS = """Each slider is one latent dimension, **the most informative first** (largest average KL on the test set).
Only some dimensions carry information: the KL term pushes the ones the decoder does not need back to the prior,
and moving them changes nothing. Start from an image's μ or a random z and drag; the traversal grid shows the top
dimensions from −3 to +3 at once."""

KNOBS = """**Named knobs.** Nothing in the loss makes a latent dimension mean one thing, so these directions were found
afterwards: each image of the training set was measured (Morpho-MNIST's stroke thickness, slant, width, height) and a
direction in latent space fitted to each measurement, within each digit so that a knob does not turn a 7 into a 1
(`docs/KNOBS.md` says how well each one edits). Fashion-MNIST's knobs lead towards a class. One step is one standard
deviation of the training codes along the knob; the knobs add to the raw sliders below. The **faces** knobs (smile,
glasses, beard, skin tone) come from the factors each training face was drawn with, and a face reader measured them
(`docs/FACES.md`): there +2 steps takes a face without the factor as far along the knob as the faces with it lie
from those without, and skin tone moves one tone per step."""

KNOB_GRID = """**Vector arithmetic** (White 2016, *Sampling Generative Networks*). A knob is a vector: White's is the mean code of
the smiling faces minus the mean code of the others; each faces knob is that, the model's own axis for the factor or a
least-squares fit, whichever the face reader measured best (`docs/FACES.md`). Add it to a face's μ and decode: the first row is the
start image above (if any), then example faces, each from −2 to +2 along the knob picked above (on digits, the first
row is z = 0, the average digit). Smiling − not smiling + your face = your face, smiling."""

ANALOGY = """**Your handwriting as every digit.** `mnist-cvae` is a *conditional* VAE (Sohn et al. 2015): its encoder sees
the image and its label, its decoder z and a label. The label carries the digit, so z is free to carry the rest: the
stroke's thickness, the slant, the width. Encode your digit once, then decode the same z with each label 0 to 9: the
style stays and the digit changes (the analogies of Kingma et al. 2014). The label of your digit comes from the
classifier, unless you give it."""

BETAS = """**What β does.** loss = distortion + β · rate. *Rate* is the KL term: the nats the code spends on this image.
*Distortion* is the reconstruction term: the nats the decoder still needs for the pixels. These four models differ
only in β. Small β: a rich code, sharp reconstructions, but the codes need not look like the prior, so samples are
poor. Large β: the code says little (low rate), reconstructions blur towards a typical digit, and samples look like
reconstructions. The chart is the rate–distortion plane of Alemi et al. 2018 (*Fixing a Broken ELBO*): the black
curve is each model's test-set mean, the orange stars this image; the dotted line has the best model's ELBO, which
cannot tell the points on it apart."""

LATENT_MAP = """Every dot is a test image's μ, projected from the latent space onto its two main directions (PCA of μ) and
coloured by class. Classes form regions because similar images get similar codes. **Click anywhere on the map**
(or move the two sliders) to decode that point — including the gaps between regions. Mark an image of your own
to see where it lands. **`mnist-2d`** has a two-dimensional latent space: its map *is* the latent space (no PCA), and
the grid beside it decodes z over the prior's quantiles, as in the Keras VAE example."""

CHANNELS = """A photo autoencoder's latent is not a vector but a small image: 4 channels at 1/8 of the photo's size. There
is no single dimension to turn, so each slider here adds a constant to one **latent channel** everywhere and decodes
the result — the channels carry colour and brightness more than objects, which is why Stable Diffusion works on them."""

EIGEN = """**PCA, the linear cousin.** A linear autoencoder with k hidden units learns the span of PCA's first k axes
(Baldi & Hornik 1989), so PCA with the VAE's k is the baseline beside every reconstruction. Its axes are images: on
faces, the *eigenfaces* of Turk & Pentland 1991. Each is one fixed pattern added in proportion; the VAE's decoder is
non-linear, so moving one latent dimension can move a mouth, change a colour or put on glasses, and its
reconstructions beat PCA's at the same k (the model card gives both MSEs)."""

FILL_IN = """**Fill in what is missing** (data imputation). A VAE gives every image a probability, so the pixels you hide
have a distribution given the ones you leave: p(missing | seen) = ∫ p(missing | z) p(z | seen) dz. *metropolis*
(Mattei & Frellsen 2018) walks z with the encoder as its proposal and accepts each move by the exact likelihood of the
**seen** pixels; the n completions are draws from it, so where the seen part is ambiguous they disagree (a 7 without
its bottom may come back a 7 or a 9: the spread map shows where). *pseudo-gibbs* (Rezende et al. 2014) trusts the
encoder and accepts every move; *pca* is the linear baseline conditioned on the seen pixels; *mean* pastes the
average image. **Paint over the image** to hide what you paint, or pick a preset. The seen pixels are never changed."""

AUGMENT = """A conditional VAE can be told which digit to write, so it can make **labelled training data**: per class, z ~ N(0, I)
decoded with that label. The zip has a folder per label, the PNGs in it, and `labels.csv`. Whether such data helps a
classifier trained on few real digits is measured, not assumed (docs/APPLICATIONS.md in the repository): with 10 real
digits per class, adding 1,000 generated ones per class raised test accuracy from 88.6 % to 90.9 %; with 100 real
per class it did not help (96.5 % → 96.1 %). The classifier's reading of every image is given beside the file."""


TRAIN = """**Train your own VAE** and watch the ELBO's two terms as it learns: the **reconstruction** term (how many nats
the decoder needs to describe the image given z) falls, while the **KL** term (the nats the code spends, weighted by
β) first rises as the encoder starts to use z, then settles. Pick your own images (a zip, or several files: grey or
colour is decided from them) or a set drawn for you, a latent size and β, and press **Train**. Every few seconds the
same training images are reconstructed and the same z decoded, so you see the blur lift. **Stop** keeps what it
learned. When it ends the model joins the **Model** list above, for you only, and works in every tab; download it
to keep it (`python app.py --model FOLDER`). A large β trades sharp reconstructions for a smoother latent space; a
tiny latent size makes every image a blend of a few prototypes."""
