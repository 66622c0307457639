"""Training scripts that produce emofer's published weights (Keras 3, any backend)."""
