"""`python -m vae_demo.classifier` is now `python -m vae_demo.training.classifier` (vae_demo/training/classifier.py); this old path says so and runs it."""

import sys

if __name__ == "__main__":
    print("vae_demo.classifier moved: run python -m vae_demo.training.classifier (running it now)", file=sys.stderr)
    from vae_demo.training.classifier import main

    main()
