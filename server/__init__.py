"""The Flower ServerApp: what coordinates the rounds."""
