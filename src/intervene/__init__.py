"""intervene: interventional analyses on LLM pretraining data (OLMo formats, Snakemake pipeline)."""

__version__ = "0.1.0"
