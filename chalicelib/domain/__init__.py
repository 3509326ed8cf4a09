"""Domain values: frozen, validated when built, free of storage and HTTP (standard library only)."""
