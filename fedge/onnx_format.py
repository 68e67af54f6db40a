"""What a fedge ONNX file promises a device: tensor names and metadata.

`fedge export` writes it and `fedge predict` reads it; this module needs neither torch
nor onnx, so a device running `fedge predict` installs only numpy and onnxruntime.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from fedge import __version__

INPUT = "features"  # float32, shape (batch, features): raw, unscaled values
OUTPUT = "probabilities"  # float32, shape (batch, classes)

VERSION_KEY = "fedge.version"
FEATURE_NAMES_KEY = "fedge.feature_names"
CLASSES_KEY = "fedge.classes"
WEIGHTS_KEY = "fedge.weights"  # "float32" or "int8": how the file stores its weights


class ModelFileError(ValueError):
    """A model file cannot be used; the message says which file and what to do."""


def metadata(feature_names: Sequence[str], classes: Sequence[str], weights: str) -> dict[str, str]:
    """ONNX metadata props: feature names and classes as JSON lists, the weights' type, the fedge version."""
    return {VERSION_KEY: __version__,
            FEATURE_NAMES_KEY: json.dumps(list(feature_names)),
            CLASSES_KEY: json.dumps(list(classes)),
            WEIGHTS_KEY: weights}


def read_metadata(props: Mapping[str, str], where: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(feature names, classes) from the metadata props written by `metadata`."""
    try:
        return tuple(json.loads(props[FEATURE_NAMES_KEY])), tuple(json.loads(props[CLASSES_KEY]))
    except (KeyError, json.JSONDecodeError):
        raise ModelFileError(f"{where}: no fedge metadata (feature names and classes) in this ONNX "
                             "file; write it with `fedge export RUN --format onnx`") from None
