"""Loading a model: a bundled name, a local folder or a Hub repo id; safetensors only, bounded downloads."""
