"""pytest-specbench: test that an LLM application keeps to its safety and behavioral specifications.

The pytest plugin lives in :mod:`pytest_specbench.plugin`; this package root stays import-light.
"""

__version__ = "0.1.0"
