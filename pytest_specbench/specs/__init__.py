"""Machine-readable specifications of pytest-specbench's file formats (shipped as package data)."""
