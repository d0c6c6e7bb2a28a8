"""Running the study: ``./run_all.sh`` (= ``python -m medlib.run``) executes the numbered notebooks headless and
writes the report.

==================  ==========================================================================
``runner``          the papermill driver: arguments, notebooks in order, one-line errors, the report
``kernel``          the Jupyter kernel the notebooks run in (this environment, this checkout)
``workspace``       what one run holds while it runs: kernel sockets, temporary copies, Ctrl-C
``manifest``        reports/<profile>/manifest.json: commit, packages, profile, wall time per notebook
``preflight``       before anything runs: what is generated, what would be downloaded, offline errors
``rehearsal``       the full profile offline with random weights, fixture data and capped steps
``projection``      the real full run's time, memory and disk projected from a rehearsal
==================  ==========================================================================
"""
