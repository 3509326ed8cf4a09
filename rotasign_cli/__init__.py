"""The rotasign command-line client: a thin client of the HTTP API."""

__version__ = "0.2.0"
