"""`python -m vae_demo.evaluate` is now `python -m vae_demo.training.evaluate` (vae_demo/training/evaluate.py); this old path says so and runs it."""

import sys

if __name__ == "__main__":
    print("vae_demo.evaluate moved: run python -m vae_demo.training.evaluate (running it now)", file=sys.stderr)
    from vae_demo.training.evaluate import main

    main()
