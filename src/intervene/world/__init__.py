"""The built-in toy world: relations, names, document text, and the corpus, tokenizer and eval
items built from them (:func:`intervene.world.build.build_world`).

A regular package (not a namespace one) so that ``setuptools.packages.find`` ships it in a wheel;
nothing is imported here, so ``intervene.world.relations`` stays cheap to import.
"""
