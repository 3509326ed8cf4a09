"""The `rotasign` commands, one module per noun; each has `register(subparsers)`."""
