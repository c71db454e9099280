"""The README's first Python snippet runs as written (offline, packaged MiniLM)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_five_lines_to_features_snippet_runs() -> None:
    snippet = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    assert len([line for line in snippet.splitlines() if line.strip()]) <= 5
    result = subprocess.run([sys.executable, "-c", snippet], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "torch.Size([1, 384])" in result.stdout
