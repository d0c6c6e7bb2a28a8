"""Developer tools, outside the installed package: run from the repository root as ``python -m tools.<name>``.

===================  ======================================================================
``bench``            throughput of preprocessing and training (``make bench``; ``prepare`` in ``bench_data``)
``bench_data``       the data layer at scale: pooled decoding and memory-mapped splits
``bench_openclip``   open_clip's own training script on the same images (the GPU check's reference)
``gpu_check``        the GPU check's summary (``make gpu-check`` = ``bash scripts/gpu_check.sh``)
``open_checkpoints`` every checkpoint of a run folder opened with torch alone and compared with medlib's reading
===================  ======================================================================
"""
