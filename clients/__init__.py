"""The Flower ClientApp: what runs on a device."""
