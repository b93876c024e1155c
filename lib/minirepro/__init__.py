"""Reproducible, executable notebook chapters that re-implement ML papers and check their central claims

Modules:

- `minirepro.core.cli`: `minirepro list | run | report | verify`: list the book, execute chapters headless with papermill, regenerate the status table, and compare a run with the recorded reference.
- `minirepro.core.repro`: Every chapter begins with one call, `setup(...)`: it reads the book's run settings, picks the chapter's sizes for the requested scale, seeds every random number generator, fixes the thread count and resolves the device.
- `minirepro.core.results`: What a chapter measures becomes a `results.json` with provenance; each pre-registered claim is checked against its fixed threshold; figures are saved as PNG; and a new run is compared with the recorded one, with tolerances."""

__version__ = "0.1.0"
