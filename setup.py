"""Build the Cython kernels (doc info, the escape scan of the term search); everything else is declared in pyproject.toml."""

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

setup(
    ext_modules=cythonize(
        [
            Extension(
                "intervene._docinfo",
                ["src/intervene/_docinfo.pyx"],
                include_dirs=[np.get_include(), "src/intervene"],
            ),
            Extension("intervene._escapes", ["src/intervene/_escapes.pyx"], include_dirs=[np.get_include()]),
        ],
        compiler_directives={"language_level": 3},
    )
)
