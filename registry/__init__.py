"""PEM Registry: catalog, artifact store and composition engine for parameter-efficient modules."""

__version__ = "0.1.0"
