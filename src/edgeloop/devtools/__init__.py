"""Local stand-ins for cloud services, used by ``edgeloop dev up``, the demo and the tests."""
