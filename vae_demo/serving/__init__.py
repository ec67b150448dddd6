"""The app's handlers as plain Python (DemoService) and what they call; never imports vae_demo.training."""
