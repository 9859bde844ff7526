"""Scaling out on existing engines: data-parallel training over MPI (mpi.py)
and hyperparameter sweeps on Dask (sweep.py). Neither engine is imported
until it is used."""
