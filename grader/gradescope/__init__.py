"""Gradescope: the results.json document (`results`), the autograder archive (`bundle`) and what runs inside it
(`autograder`, started by the archive's run_autograder)."""
