"""The one thing pyproject.toml cannot say: facmon's optional C kernel for the collector's hot path.

`optional=True`: without a C compiler and Python's headers the install still succeeds and facmon
runs the same code paths in Python (core/reading_plans.py), only slower. scripts/bootstrap.sh
installs gcc and python3-dev, so `make up` / `make test` build it.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("core._reading_kernel", ["core/_reading_kernel.c"], optional=True,
                             extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-missing-field-initializers",
                                                 "-Wno-unused-parameter"])])
