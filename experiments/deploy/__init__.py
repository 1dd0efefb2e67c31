"""`peel deploy`: Flower's deployment engine for real separate agencies — certificates and keys,
a SuperLink with TLS and SuperNode authentication, one SuperNode per agency, and submitting
Peel's ServerApp to it. See docs/deployment.md."""

from experiments.deploy.errors import DeployError

__all__ = ["DeployError"]
