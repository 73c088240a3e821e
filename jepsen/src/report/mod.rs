//! The report folder of a run: anomalies, a summary and plots.
