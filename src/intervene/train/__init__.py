"""The built-in trainer: OLMo 2 pretraining semantics on a transformers ``Olmo2ForCausalLM``."""
