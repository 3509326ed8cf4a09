"""Packaging rotasign for AWS: the generated infrastructure and `chalice package` around it (never deployed)."""
