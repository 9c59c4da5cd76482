"""tensorboardX, imported without PyTorch.

tensorboardX's package `__init__` always imports its `SummaryWriter` module, which
imports PyTorch whenever it is installed, only to name a type: 1.2 s and 250 MB
that a JAX program never uses. While tensorboardX is imported here, `torch` is
hidden from the import system (unless the process already imported it), then the
import system is left exactly as it was, so importing PyTorch later still works.
"""

import sys

_hide_torch = "torch" not in sys.modules
if _hide_torch:
    sys.modules["torch"] = None  # makes `import torch` raise ImportError
try:
    import tensorboardX  # noqa: F401
finally:
    if _hide_torch:
        del sys.modules["torch"]

from tensorboardX import summary  # noqa: E402
from tensorboardX.event_file_writer import EventsWriter  # noqa: E402
from tensorboardX.proto import (  # noqa: E402
    attr_value_pb2,
    event_pb2,
    graph_pb2,
    node_def_pb2,
    tensor_shape_pb2,
    types_pb2,
    versions_pb2,
)
from tensorboardX.proto.summary_pb2 import Summary  # noqa: E402

__all__ = [
    "EventsWriter",
    "Summary",
    "attr_value_pb2",
    "event_pb2",
    "graph_pb2",
    "node_def_pb2",
    "summary",
    "tensor_shape_pb2",
    "types_pb2",
    "versions_pb2",
]
