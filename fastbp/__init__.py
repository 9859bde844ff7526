"""fastbp: hand-written mini-batch backpropagation on numpy or cupy."""

__version__ = "0.1.0"
