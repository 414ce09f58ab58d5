"""The built-in demo: a drifting stream of handwritten digits rendered as camera frames."""
