"""TensorFlow-free serving: host-side decoding over exported one-step decoder graphs."""
