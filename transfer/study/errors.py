"""The pipeline's bad-input error (its own module so that every other module can import it)."""


class PipelineError(ValueError):
    """A pipeline config or state that cannot run; the message is one line."""
