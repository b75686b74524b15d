"""The knowledge base: reading documents, chunking them, embedding and storing them in LanceDB."""
