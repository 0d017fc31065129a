"""`matseg demo`: the node on the shipped model, over real DDS, on a sample sequence.

The top of the dependency graph: it starts the `ros` nodes as processes, renders sample
scenes with `data`, and may import anything in the package.
"""
