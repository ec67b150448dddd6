"""`python -m vae_demo.train`: train your own VAE on your images or a generated set, for a number of seconds, as the
app's Train tab does (vae_demo/training/in_app.py: the same trainer and the same model card).

    python -m vae_demo.train --images my_photos.zip --seconds 120 --out my-vae
    python -m vae_demo.train --source shapes --latent-dim 8 --beta 4 --out shapes-vae

The bundled checkpoints are trained on whole datasets by `python -m vae_demo.training.train` (epochs, not seconds).
"""

import sys

if __name__ == "__main__":
    from vae_demo.training.in_app import main

    sys.exit(main())
