"""dynamics study (paper 000): neural ODEs learned through a differentiable scattering model."""
