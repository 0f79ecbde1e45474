#!/usr/bin/env bash
# Gradescope runs this for every submission, as root, in /autograder (grader/gradescope/bundle.py wrote it).
# It grades /autograder/submission/spatial.py and writes /autograder/results/results.json.
cd /autograder/source && exec /autograder/venv/bin/python -m grader.gradescope.autograder run
