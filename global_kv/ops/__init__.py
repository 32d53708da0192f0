"""Operations over HTTP for a node: Prometheus `/metrics` and `/health`, served on trio."""

from ._app import NodeSource as NodeSource
from ._app import OpsApp as OpsApp
from ._app import ReplicaSource as ReplicaSource
from ._errors import MetricsIncomplete as MetricsIncomplete
from ._errors import OpsError as OpsError
from ._errors import OpsServerError as OpsServerError
from ._health import DEFAULT_MAX_COMMIT_LAG as DEFAULT_MAX_COMMIT_LAG
from ._health import Health as Health
from ._health import health_from_status as health_from_status
from ._metrics import CONTENT_TYPE as CONTENT_TYPE
from ._metrics import METRIC_NAMES as METRIC_NAMES
from ._metrics import metric_families as metric_families
from ._metrics import render_metrics as render_metrics
from ._server import OpsServer as OpsServer
from ._server import open_ops_server as open_ops_server
from ._server import parse_host_port as parse_host_port
