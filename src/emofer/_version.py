"""The package version, in a module of its own so that any module can read it without importing
``emofer/__init__`` (which imports the recognizer, and through it most of the package)."""

__version__ = "0.1.0"
