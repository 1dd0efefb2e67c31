"""The one error type of `peel deploy`: a user error whose message is one line (what and where)."""


class DeployError(Exception):
    """Something about the deployment the user can fix (message names the file, port or process)."""
