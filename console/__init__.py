"""vigil's console: the `vigil` CLI and (soon) the Textual app."""
