"""clustering study (paper 001): AI-NERD autoencoder classes of XPCS two-time maps."""
