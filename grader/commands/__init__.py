"""Sub-commands of the `grader` console script: each module defines `register(subparsers)`."""
