"""The training data: MNIST and Fashion-MNIST in torchvision's layout, dSprites generated. Used by training only."""
