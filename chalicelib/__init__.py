"""rotasign: a serverless signing-key manager."""

__version__ = "0.1.0"
