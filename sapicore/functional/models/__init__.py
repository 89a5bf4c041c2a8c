"""Models: neurons, synapses, plasticity rules (and the weight layouts they address), spike sources
and encoders, with the integrators and spike functions they step with. Pure functions over parameter
and state pytrees; they know nothing of runs."""
