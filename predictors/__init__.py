"""Accuracy and latency predictors over architecture graphs."""
