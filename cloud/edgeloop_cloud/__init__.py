"""EdgeLoop's cloud side as a plain library.

The retrain trigger, training, the registry gate, the model registry and the rollout live here
as functions and small classes over injected ports (blob storage, twin targets, clock); the
Azure Functions app (``cloud/function_app.py``) and the ``edgeloop cloud`` CLI both call them.
"""
