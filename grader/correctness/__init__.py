"""The trusted side of the correctness stage (grader/stages/correctness.py), one concern per module.

input_file: the job's arrays.npz and its index; result_file: the job's result.bin, validated;
feedback: each check's verdict and every message to the student.
"""
