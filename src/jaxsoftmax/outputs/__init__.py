"""What a run leaves in its log directory: TensorBoard events, results.json, error
analysis, and the log directory itself."""
