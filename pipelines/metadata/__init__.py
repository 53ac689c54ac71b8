"""Readers of ML Metadata and of a run's artifacts: nothing here defines or runs a pipeline.

    store.py     open a pipeline's store (the one place that does)
    results.py   a run's metrics, blessing and push (`make results`)
    lineage.py   a pushed version back to its data, code and packages (`make lineage`)
    report.py    report.html per run (`python -m pipelines.metadata.report PIPELINE`)
    progress.py  per-component progress lines while a run goes
"""
