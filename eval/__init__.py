"""HumanEval evaluation."""
