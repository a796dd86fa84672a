"""Which certificate names a node takes federation calls from (issue 18, denial of service).

The gRPC server asks :meth:`NodeService.is_member` before it reads anything of a call;
the attack tests over real gRPC are in ``tests/transport/test_transport_grpc_dos.py``.
"""

from __future__ import annotations

from pathlib import Path

from lianmo.compute.backend import SerialBackend
from lianmo.node.service import NodeService

from .inprocess_nodes import HOST, breast_configs, make_nodes, train_spec


def test_members_are_the_coordinators_and_the_parties_of_jobs_the_node_holds(
    tmp_path: Path, shared_data: Path
) -> None:
    platform = make_nodes(tmp_path, shared_data)[HOST]
    assert platform.is_member("coordinator")
    assert not platform.is_member("broker")  # no job yet: not even a future peer
    spec = train_spec("job-members")
    platform.prepare("coordinator", spec.job_id, spec.to_json())
    assert [n for n in ("broker", "arbiter", "stranger") if platform.is_member(n)] == [
        "broker",
        "arbiter",
    ]
    # A restarted node knows its peers again from the jobs in its state directory.
    restarted = NodeService(
        breast_configs(tmp_path, shared_data)[HOST], platform._channel_factory, SerialBackend()
    )
    assert restarted.is_member("broker") and not restarted.is_member("stranger")
