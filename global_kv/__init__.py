"""Global: a Raft-replicated key-value store with distributed locks, hosted on ergo_py."""
