"""`python -m vae_demo.train` is now `python -m vae_demo.training.train` (vae_demo/training/train.py); this old path says so and runs it."""

import sys

if __name__ == "__main__":
    print("vae_demo.train moved: run python -m vae_demo.training.train (running it now)", file=sys.stderr)
    from vae_demo.training.train import main

    main()
