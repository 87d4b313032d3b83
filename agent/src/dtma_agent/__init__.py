"""DTMA, the Droplet Tool Management Agent."""

__version__ = "0.1.0"
