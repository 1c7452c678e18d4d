"""Suite-wide settings: headless plotting and quiet, deterministic CPU runs."""
import os

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("PYTHONHASHSEED", "0")
