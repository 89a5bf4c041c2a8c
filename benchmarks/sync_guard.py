"""No host synchronisation in a step: one eager step of COBA-4k and one compiled chunk of it run under
``torch.cuda.set_sync_debug_mode("error")``, which raises at any operation that makes the host wait
for the GPU (a ``.item()``, a copy from a host scalar, a ``nonzero``).

Run:  python benchmarks/sync_guard.py [--neurons 4000] [--dry-run]
On a machine without a GPU it says so and stops; ``--dry-run`` then runs the same steps on the CPU,
without the guard (to check the script itself).
"""

from __future__ import annotations

import argparse
import sys

import torch

import sapicore.functional as sf
from sapicore.functional.running.stepper import compile_chunk, make_chunk, plan_run
from sapicore.networks import coba, initial_state


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--neurons", type=int, default=4000)
    parser.add_argument("--dry-run", action="store_true", help="without a GPU, run the steps on the CPU unguarded")
    args = parser.parse_args()
    if not torch.cuda.is_available() and not args.dry_run:
        print("sync guard: no GPU here, nothing to check")
        return 0
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    guard = torch.cuda.set_sync_debug_mode if device.type == "cuda" else (lambda mode: None)
    net = sf.to(coba(args.neurons, fan_in=80), device=device)
    state = initial_state(net, device=device)
    with torch.no_grad():
        model, plan = plan_run(
            net, state, None, dt=0.1, steps=20, duration=None, record=(), every=1, fast=True, chunk=20, progress=False
        )
        chunk = compile_chunk(make_chunk(model, (), 20, 1, 0.1, None), True, device)  # as simulate compiles it
        t0 = torch.zeros((), device=device)
        for _ in range(3):  # compile, record the graphs, replay once: all before the guard
            model.step(state, None, 0.1)
            state, _ = chunk(model, state, None, t0)
        if device.type == "cuda":
            torch.cuda.synchronize()
        failures = []
        for name, run in (
            ("eager step", lambda: model.step(state, None, 0.1)),
            ("compiled chunk", lambda: chunk(model, state, None, t0)),
        ):
            guard("error")
            try:
                run()
                print(f"sync guard: {name}: no host synchronisation")
            except RuntimeError as err:
                failures.append(name)
                print(f"sync guard: {name}: SYNCHRONISES: {str(err).splitlines()[0]}")
            finally:
                guard("default")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
