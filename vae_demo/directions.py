"""`python -m vae_demo.directions` is now `python -m vae_demo.training.directions` (vae_demo/training/directions.py); this old path says so and runs it."""

import sys

if __name__ == "__main__":
    print("vae_demo.directions moved: run python -m vae_demo.training.directions (running it now)", file=sys.stderr)
    from vae_demo.training.directions import main

    main()
