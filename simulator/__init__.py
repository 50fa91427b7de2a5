"""Simulated buyers for demos, tests and benchmarks: a development tool, not part of the product.

The product's apps never import it; they only reach it over HTTP, like any buyer.
"""
