"""The scale benchmark (``make bench-scale``, never part of ``make test``): OLMo-shaped data (the real
dolma2 tokenizer, English text with real word frequencies, the real ParaRel terms planted), every CPU
stage run through Snakemake at several sizes, CPU time and peak RSS per stage, and the growth fitted
and projected to one group of 1000 batches at the OLMo 2 1B and 7B shapes."""
