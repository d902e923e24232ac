"""shear study (paper 003): Monte Carlo speckle of sheared colloids, SVD and GP inversion."""
