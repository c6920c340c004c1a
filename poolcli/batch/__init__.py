"""Many inputs: which ones (``discovery``), where each output goes (``naming``), one input's way
through header, plan, decode, compute and write (``flow``), and the threads, progress hooks and
signals around them (``scheduler``), with the typed ``ProcessOptions`` and the outcomes."""

from __future__ import annotations

from .discovery import InputItem, expand_inputs
from .naming import Target, output_path, output_targets
from .options import ProcessOptions
from .outcome import Outcome, Summary
from .scheduler import process_all

__all__ = ["InputItem", "Outcome", "ProcessOptions", "Summary", "Target", "expand_inputs", "output_path",
           "output_targets", "process_all"]
