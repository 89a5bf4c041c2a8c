"""The shared-memory exchange of partitioned runs (running.shared, csrc/exchange.cpp): the operator's
layout of segments and rows, its refusals, a rank that is stuck (the timeout) or gone (noticed at
once), and a segment that never outlives the run. Results of whole runs through it are compared with
the single process in test_partition.py."""

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import torch

from sapicore.functional.propagation import kernels
from sapicore.functional.running import shared

pytestmark = pytest.mark.skipif(
    not kernels.available() or not Path("/dev/shm").is_dir(), reason="needs the kernel library and /dev/shm"
)


@pytest.fixture
def alone():
    """A channel for one rank of one (this process), its segment already removed."""
    library = shared._library()
    name = f"/sapicore-test-{uuid.uuid4().hex[:12]}".encode()
    number = library.sapicore_exchange_open(name, 0, 1, 4096, 5.0, 1)
    assert number >= 0, library.sapicore_exchange_error()
    library.sapicore_exchange_unlink(name)
    yield shared.SharedChannel(number, 0, 1, 4096)
    library.sapicore_exchange_close(number)


def test_one_rank_gets_its_own_values_back_for_every_layout_and_dtype(alone):
    values = torch.tensor([0.5, 0.0, -0.0, 3.0, float("inf"), 7.0])
    out = alone.gather(values, [(0, 2), (5, 4)])
    assert out.dtype == values.dtype and torch.equal(out.view(torch.int32), values.view(torch.int32))  # -0.0 kept
    rows = torch.arange(30, dtype=torch.float64).reshape(5, 6) % 3
    assert torch.equal(alone.gather(rows, [(0, 6)]), rows)
    many = torch.rand(200, 6)  # more rows than one exchange takes: several exchanges
    assert torch.equal(alone.gather(many, [(0, 6)]), many)
    for dtype in (torch.uint8, torch.int16, torch.int32, torch.int64, torch.float16):
        ints = torch.arange(6).to(dtype)
        assert torch.equal(alone.gather(ints, [(1, 6)]), ints)
    assert alone.traffic()["calls"] > 5 and alone.traffic()["bytes"] == 0  # nothing from other ranks


def test_the_operator_refuses_what_it_cannot_exchange(alone):
    gather = torch.ops.sapicore.exchange_gather
    with pytest.raises(RuntimeError, match="holds 5 values per row, its share of the segments"):
        gather(torch.zeros(5), alone.number, [0, 6])
    with pytest.raises(RuntimeError, match="segments are \\(start, size\\) pairs"):
        gather(torch.zeros(6), alone.number, [0, 6, 1])
    with pytest.raises(RuntimeError, match="exceed the channel's slot"):
        gather(torch.zeros(2000), alone.number, [0, 2000])
    with pytest.raises(RuntimeError, match="values \\(neurons,\\) or \\(rows, neurons\\)"):
        gather(torch.zeros(2, 3, 6), alone.number, [0, 6])
    with pytest.raises(RuntimeError, match="channel 999 is not open"):
        gather(torch.zeros(6), 999, [0, 6])
    with pytest.raises(RuntimeError, match="unsupported dtype"):
        gather(torch.zeros(6, dtype=torch.complex128), alone.number, [0, 6])


def test_a_closed_channel_number_is_reused_and_opening_fails_cleanly():
    """A process's first open channel is number 0, so compiled chunks (which name it) are the same
    in every process; a segment that is missing or too large for /dev/shm is an error message."""
    library = shared._library()
    numbers = []
    for _ in range(2):
        name = f"/sapicore-test-{uuid.uuid4().hex[:12]}".encode()
        numbers.append(library.sapicore_exchange_open(name, 0, 1, 64, 5.0, 1))
        library.sapicore_exchange_unlink(name)
        library.sapicore_exchange_close(numbers[-1])
    assert numbers[0] == numbers[1] >= 0
    assert library.sapicore_exchange_open(b"/sapicore-test-missing", 0, 2, 64, 5.0, 0) == -1
    assert "No such file" in library.sapicore_exchange_error().decode()
    huge = f"/sapicore-test-{uuid.uuid4().hex[:12]}"  # more than /dev/shm holds: refused, not a SIGBUS later
    assert library.sapicore_exchange_open(huge.encode(), 0, 1, 1 << 46, 5.0, 1) == -1
    assert "cannot reserve" in library.sapicore_exchange_error().decode()
    assert not Path("/dev/shm" + huge).exists()


STUCK = """
import os, sys, time
import torch
import torch.distributed as dist
sys.path.insert(0, {tests!r})
import sapicore.functional as sf
from test_partition import DT, network

dist.init_process_group("gloo")
local = sf.partition(network(), transport="shared")
rank = dist.get_rank()

def say(line):  # one write per line: the ranks share a pipe
    sys.stdout.write(line + "\\n")
    sys.stdout.flush()

def drive(t):  # rank 1 stalls at 2 ms, for longer than rank 0 waits
    if rank == 1 and abs(float(t) - 2.0) < 1e-6:
        time.sleep({stall})
    return {{"exc": 0.0}}

try:
    sf.simulate(local, local.init_state(), drive, dt=DT, steps=200)
except RuntimeError as err:
    from sapicore.functional.running.shared import failure
    say(f"rank {{rank}}: " + str(err).splitlines()[0])
    say(f"failure of rank {{rank}}: {{failure()}}")  # what the command line reports
    os._exit(3)
say(f"rank {{rank}}: finished")
"""


@pytest.mark.parametrize("stall, expected", [(4.0, "did not reach exchange"), (0.0, "finished")])
def test_a_stuck_rank_makes_the_other_give_up_after_the_timeout_naming_it(tmp_path, stall, expected):
    script = tmp_path / "stuck.py"
    script.write_text(STUCK.format(tests=str(Path(__file__).parent), stall=stall))
    environment = dict(os.environ, OMP_NUM_THREADS="1", SAPICORE_EXCHANGE_TIMEOUT="1")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", str(script)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, env=environment)
    lines = [line for line in done.stdout.splitlines() if line.startswith("rank 0: ")]
    assert lines and expected in lines[0], done.stdout[-2000:] + done.stderr[-2000:]
    if stall:
        assert "rank 1 did not reach exchange" in lines[0] and "within 1 s" in lines[0]
        assert f"failure of rank 0: {lines[0][len('rank 0: ') :]}" in done.stdout
        assert done.returncode != 0
    else:
        assert done.returncode == 0


def test_no_segment_outlives_a_run(tmp_path):
    """Every rank maps the segment, then it is removed: /dev/shm holds nothing of a finished run."""
    before = {path.name for path in Path("/dev/shm").glob("sapicore-*")}
    script = tmp_path / "run.py"
    script.write_text(STUCK.format(tests=str(Path(__file__).parent), stall=0.0))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", str(script)]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=240, env=dict(os.environ, OMP_NUM_THREADS="1")
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert {path.name for path in Path("/dev/shm").glob("sapicore-*")} <= before
