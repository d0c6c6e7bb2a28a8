"""What runs leave behind, per the output contract (DESIGN.md):

==================  ==========================================================================
``records``         run names, metrics/<run>.json and predictions/<run>.npz, tables/*.csv
``tables``          one row per run and metric, the mean over seeds, their display copies
``plots/``          figures by subject, saved with the marks the run and its data need
``references``      published numbers, each with its citation
==================  ==========================================================================
"""
