"""Device-side inference: the Runner protocol and its backends. Never imports torch."""
