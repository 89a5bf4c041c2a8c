"""Propagation: who connects to whom (connectivity), projections, how spikes
move along them (the CPU kernel, its build cache and C++ source, the GPU kernel in Triton, the choice
of backend)."""
