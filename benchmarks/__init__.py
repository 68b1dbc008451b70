"""Benchmarks of the rig (``make bench``): each script prints its figures as JSON and keeps them in results/."""
