"""The node's Icecast: its configuration (rendered, pure) and its admin interface."""
