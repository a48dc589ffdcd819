"""The one error type the core raises for files it cannot use."""


class ModelLoadError(ValueError):
    """A model file or state_dict that is not a usable GPEN; the message says why and what to do.

    `plain` is the same sentence without any of the file's own bytes. A server passes that one on:
    the file may be whatever a link in a model folder points to (/etc/shadow, a key), and only a
    local user, who can read the file anyway, is shown how it starts."""

    def __init__(self, message: str, plain: str | None = None) -> None:
        super().__init__(message)
        self.plain = message if plain is None else plain
