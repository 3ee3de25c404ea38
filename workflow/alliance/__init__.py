"""alliance-outcomes: the therapeutic alliance and outcomes in depression-treatment trials."""

__version__ = "0.1.0"
