"""fedge: federated learning of small MLPs on edge devices, on Flower."""

__version__ = "0.1.0"
