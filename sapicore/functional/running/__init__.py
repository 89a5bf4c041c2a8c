"""Running: `simulate` (the stepper), `sweep` (lanes under vmap), the checks of what a run is given
and of what it produces, the feed of records to sinks, spike events, and the reruns of chunks whose
fixed spike capacity overflowed."""
