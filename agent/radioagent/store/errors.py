"""What the cluster store raises: the two failures its callers tell apart."""


class EtcdUnavailable(Exception):
    """etcd did not answer in time or refused; the message says which call and why."""


class Conflict(Exception):
    """A compare-and-set lost: the record exists (create), does not exist (update,
    delete), or changed meanwhile. Nothing was written."""


class NoSuchMount(Conflict):
    """The write was for a mount that is not (or no longer) in the cluster."""
