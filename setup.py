"""Build the Cython doc-info kernel; everything else is declared in pyproject.toml."""

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

setup(
    ext_modules=cythonize(
        [Extension("intervene._docinfo", ["src/intervene/_docinfo.pyx"], include_dirs=[np.get_include(), "src/intervene"])],
        compiler_directives={"language_level": 3},
    )
)
