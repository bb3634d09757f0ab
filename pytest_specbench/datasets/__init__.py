"""Checksum manifests of the datasets `specbench download` fetches (shipped as package data)."""
