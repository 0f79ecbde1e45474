"""Prepared data sets: read an operator's copy once, write a memory-mappable cache the sandbox can mount."""
