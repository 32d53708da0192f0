"""etcd's own API on a node: the v3 gRPC services (KV, Watch, Lease, Cluster,
Maintenance) and the JSON gateway, on one port, so that etcdctl and every etcd client
library work against the cluster unchanged."""

from ._grpc import GrpcError as GrpcError
from ._grpc import Status as Status
from ._server import DEFAULT_MAX_REQUEST_BYTES as DEFAULT_MAX_REQUEST_BYTES
from ._server import EtcdServer as EtcdServer
from ._server import open_etcd_server as open_etcd_server
from ._services import ETCD_VERSION as ETCD_VERSION
