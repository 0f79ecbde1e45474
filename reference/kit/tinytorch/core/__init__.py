"""Core modules of tinytorch: tensor, autograd, layers, activations, losses, optimizers, data loading."""
