"""scheduler layer of nbkube; see DESIGN.md for what it may import."""
