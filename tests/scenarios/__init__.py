"""Ground-truth scenarios: real tracked jobs, a real recorder, known culprits."""
