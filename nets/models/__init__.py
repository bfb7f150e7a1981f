"""Networks: layer lists, shipped architectures, a spec's declared models (ONNX, logits), side exits,
increments and exit criteria."""
