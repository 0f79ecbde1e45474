"""NumPy reference layers (loop oracle and fast vectorized) and the course kit (`reference/kit/tinytorch`)."""
