"""One small function per op per engine: ``numpy`` (the CPU engine, no torch) and ``torch``
(CUDA, and the semantic reference), looked up by the op's class; the one quantizer's arithmetic
(``quantize``) and the one luma (``luma``). Kernels compute and nothing else: no files, no output.
"""
