"""The models: the VAE and its config, the photo autoencoders behind the same contract, the verdict's classifier."""
