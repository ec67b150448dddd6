"""Images in and out: any upload to a model input (uploads, framing), tensors to pictures (render, charts)."""
