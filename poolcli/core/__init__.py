"""Pure planning, importable without numpy, Pillow or torch.

``arithmetic`` (the output-size formulas and their rendering), ``values`` (parameter converters
and the one matrix grammar), ``ops`` (one class per op), ``spec`` (compact specs, torch calls and
pipeline text), ``plan`` (Pipeline and its immutable Plan), ``filters`` (the named kernels) and
``textbook`` (the window-by-window loops that ``explain`` shows and the tests trust). Nothing here
reads a file, computes on pixels or prints.
"""
