"""Presenting, never computing: report tables (``report``) and JSON records (``records``) from a
plan and the timings passed beside it, explain's walkthrough (``explain``), and pictures of the
stages (``pictures``)."""
