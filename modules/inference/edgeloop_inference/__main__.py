"""``python -m edgeloop_inference``: the inference module container's entry point."""

import sys

from edgeloop.runtime import run_module
from edgeloop_inference.module import InferenceModule

if __name__ == "__main__":
    sys.exit(run_module(InferenceModule.from_environment()))
