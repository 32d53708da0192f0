"""GlobalClient: the cluster as an application actor sees it; locks and fencing."""

from ._client import GlobalClient as GlobalClient
from ._client import open_client as open_client
from ._locks import FencedResource as FencedResource
from ._locks import LockHandle as LockHandle
