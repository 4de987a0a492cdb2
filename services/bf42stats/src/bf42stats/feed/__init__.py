"""The BFList v2 feed: its models, a client, and a compatible simulator for offline runs."""

GAMES: tuple[str, ...] = ("bf1942", "fh2", "bfvietnam")
