"""What every benchmark prints and records: command, machine, date, medians, ratios."""

from __future__ import annotations

import os
import platform
import shlex
import statistics
import sys
from datetime import date
from importlib.metadata import version
from pathlib import Path

BENCHMARKS_MD = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"


def machine(packages: tuple[str, ...] = ("flwr", "torch", "numpy", "ray")) -> str:
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    cpu = next((line.split(":", 1)[1].strip() for line in _lines("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor() or "unknown CPU")
    versions = ", ".join(f"{name} {version(name)}" for name in packages)
    return (f"{os.cpu_count()} cores ({cpu}), {memory_gib:.0f} GiB, {platform.system()} {platform.machine()}; "
            f"Python {platform.python_version()}, {versions}")


def _lines(path: str) -> list[str]:
    try:
        return Path(path).read_text().splitlines()
    except OSError:
        return []


def command() -> str:
    return "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(sys.argv[0]), *sys.argv[1:]])


def summary(values: list[float], fmt: str = ".2f") -> str:
    """Median and spread (min-max) of repeated measurements."""
    return f"{statistics.median(values):{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"


def header(title: str, repeats: int) -> str:
    return (f"Command: `{command()}`  \nMachine: {machine()}  \nDate: {date.today()}  \n"
            f"Median (min-max) of {repeats} runs; ratios against the baseline measured in the same invocation.\n")


def write_section(key: str, title: str, body: str, path: Path = BENCHMARKS_MD) -> None:
    """Replace this benchmark's section of BENCHMARKS.md (between markers), keep the others."""
    start, end = f"<!-- {key}:start -->", f"<!-- {key}:end -->"
    section = f"{start}\n## {title}\n\n{body.strip()}\n{end}"
    text = path.read_text() if path.exists() else "# Benchmarks\n\nEach section is written by a script in `benchmarks/`.\n"
    if start in text and end in text:
        before, rest = text.split(start, 1)
        text = before + section + rest.split(end, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    path.write_text(text)
    print(f"wrote section '{title}' of {path}")
