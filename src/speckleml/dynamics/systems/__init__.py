"""Ground-truth dynamical systems of the dynamics study (one module per case)."""
