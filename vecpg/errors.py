"""Errors every layer may raise. A module of its own, so that nothing imports the config
(or the CLI) just to report bad input."""


class ConfigError(ValueError):
    """A one-line, user-facing message naming the bad field and what is allowed."""
