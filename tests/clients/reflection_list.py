"""Lists a server's services through gRPC reflection, as a generic client would.

Usage: reflection_list.py HOST:PORT
Prints a JSON object: {"services": [...], "methods": {service: [method, ...]},
"http_rule": <the google.api.http GET path of GetCurrentUser>}.
Uses grpcio-reflection's v1alpha client (ProtoReflectionDescriptorDatabase).
"""

import json
import sys

import grpc
from google.api import annotations_pb2  # noqa: F401  (registers the http option)
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)


def main() -> None:
    channel = grpc.insecure_channel(sys.argv[1])
    database = ProtoReflectionDescriptorDatabase(channel)
    services = sorted(database.get_services())
    pool = DescriptorPool(database)
    methods = {}
    for name in services:
        descriptor = pool.FindServiceByName(name)
        methods[name] = [m.name for m in descriptor.methods]
    method = pool.FindMethodByName("fileorganizer.v1.AuthService.GetCurrentUser")
    options = method.GetOptions()
    http_rule = options.Extensions[annotations_pb2.http].get
    print(json.dumps({"services": services, "methods": methods, "http_rule": http_rule}))


if __name__ == "__main__":
    main()
