# The metadata lives in pyproject.toml; this file only wires the cffi build.
from setuptools import setup

setup(cffi_modules=["csrc/_build.py:ffibuilder"])
