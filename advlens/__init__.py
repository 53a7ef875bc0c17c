"""advlens: models, images and the command line around the `attacks` and `interpret` packages."""

__version__ = "0.1.0"
