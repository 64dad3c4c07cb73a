"""Pretraining a small causal LM on a built corpus."""
