"""Generated from proto/vdb/v1 by proto/generate.py. Do not edit."""
