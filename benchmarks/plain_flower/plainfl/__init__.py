"""Plain Flower baseline app (quickstart-pytorch pattern)."""
