"""Sub-commands of the `qaconv` CLI: one module each, exposing `register(subparsers)` (qaconv.cli finds them).

A command parses its flags (generated from the config tree: qaconv.config.flags), checks what it can before
any work, and calls the library; it holds no logic a script would want, and imports no other command.
"""
