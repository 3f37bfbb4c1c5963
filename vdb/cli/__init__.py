"""The `vdb` command line: one click group per file."""
