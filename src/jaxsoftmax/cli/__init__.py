"""The command lines, one module per command, and their shared parts: each parses,
calls the library and prints."""
