"""The one error type the core raises for files it cannot use."""


class ModelLoadError(ValueError):
    """A model file or state_dict that is not a usable GPEN; the message says why and what to do."""
