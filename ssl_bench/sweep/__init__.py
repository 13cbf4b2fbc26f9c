"""The benchmark runner: sweep specs, running cells (local or through submitit), offline evaluation
per cell, and the results table / plots / W&B report of a sweep directory."""
