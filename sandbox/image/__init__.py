"""The sandbox image: Dockerfile for connected hosts and the offline (debootstrap) build."""
