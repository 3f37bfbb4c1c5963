"""Text handling for retrieval: file loaders and token-budgeted chunking."""
