"""Sub-commands of the `qaconv` CLI: one module each, exposing `register(subparsers)`."""
