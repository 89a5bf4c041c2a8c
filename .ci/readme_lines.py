"""Print the README's install, run and test commands (its first three ```bash blocks), one per line,
so that CI runs exactly what the README tells a new user to run."""

import re
import sys
from pathlib import Path

blocks = re.findall(r"```bash\n(.*?)```", (Path(__file__).resolve().parents[1] / "README.md").read_text(), flags=re.S)
lines = [block.strip() for block in blocks[:3]]
if len(lines) != 3 or any("\n" in line for line in lines):
    sys.exit("README.md must open with three one-line bash blocks: install, run, test")
print("\n".join(lines))
