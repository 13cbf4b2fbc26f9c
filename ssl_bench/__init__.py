"""ssl-bench: multi-view self-supervised learning with Lightning."""
__version__ = "0.1.0"
