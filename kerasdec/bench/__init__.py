"""``kerasdec bench``: how fast the network, the input pipeline and the exported artifacts run here.

suite.py     SuiteConfig, run_suite (every row) and markdown_table: what the command prints and writes
timing.py    ModelTimer (the compiled training step and forward pass), timed calls, the row format
flops.py     FLOPs per image from the layer shapes; the machine's matmul rate
pipeline.py  the input pipeline alone, from its cache and cold, on synthetic images
export.py    the SavedModel and TFLite files written by the deploy code, timed through their runners
"""
