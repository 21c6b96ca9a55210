"""HLS from the streams a node already receives: segments cut on a clock every node
shares (segmenter.py), their timestamp tags (id3.py), playlists (playlists.py)."""
