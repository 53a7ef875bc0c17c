"""Pure functions over attack results: metrics, group norms, saliency, CAMs, scores and figures."""
