"""Summarise a pjdfstest ``prove -rv`` log (scripts/pjdfstest.sh): assertions planned and passed, per
directory, and the failing assertions (file, number, and the command pjdfstest printed for it).

An assertion passes when its ``ok N`` line is there (or a ``not ok N # TODO``: an expected failure, as
prove counts it); everything else of a file's ``1..N`` plan failed (``not ok``, or never run).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path


def main(log: str, failures: str | None = None) -> None:
    per_dir: dict[str, list[int]] = {}
    failing: list[str] = []
    current = ""
    for line in Path(log).read_text(errors="replace").splitlines():
        header = re.match(r"^(/\S+/tests/(\w+)/\S+\.t) \.+", line)
        if header:
            current = header.group(1)
            per_dir.setdefault(header.group(2), [0, 0])
            continue
        if not current:
            continue
        entry = per_dir[Path(current).parent.name]
        plan = re.match(r"^1\.\.(\d+)", line)
        if plan:
            entry[0] += int(plan.group(1))
        elif re.match(r"^ok \d+", line) or re.match(r"^not ok \d+ # TODO", line):
            entry[1] += 1  # a failing TODO assertion passes, as prove counts it
        elif line.startswith("not ok"):
            failing.append(f"{Path(current).parent.name}/{Path(current).name}: {line}")
    total = sum(p for p, _ in per_dir.values())
    passed = sum(o for _, o in per_dir.values())
    for name, (plan, ok) in sorted(per_dir.items()):
        print(f"{name:10} {ok:5}/{plan:5} passed")
    rate = 100.0 * passed / total if total else 0.0
    print(f"total: {passed}/{total} assertions passed ({rate:.1f}%)")
    if failures:
        Path(failures).write_text("\n".join(failing) + "\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)
