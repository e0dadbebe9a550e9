"""proxy layer of nbkube; see docs/architecture.md (Layers) for what it may import."""
