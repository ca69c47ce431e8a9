"""Scripted stubs for the stores that cannot run here (Elasticsearch, OpenSearch, Weaviate,
Pinecone), and the vendors' documented response bodies they answer with.

These are not emulators: each test scripts the exact answers it needs and asserts the
requests the official client sent. See ``docs/stores-http.md``.
"""
