"""Calls one RPC of every service a server lists, knowing nothing but what reflection tells it,
as a generic client (grpcurl, Postman, an API explorer) does.

Usage: reflection_call.py HOST:PORT EMAIL PASSWORD
No generated stubs: request and response classes are built at run time from descriptors fetched
over gRPC reflection (grpcio-reflection's ProtoReflectionDescriptorDatabase feeding a
DescriptorPool, message_factory.GetMessageClass), requests are filled from JSON and responses
printed as JSON (proto3 JSON mapping, defaults included). Registers EMAIL, then calls the other
RPCs with the access token. Prints {"services": [...], "calls": {"Service/Method": response}};
an RPC error exits non-zero with the status on stderr.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Dict, List, Optional, Tuple

import grpc
from google.protobuf import json_format
from google.protobuf.descriptor_pool import DescriptorPool
from google.protobuf.message_factory import GetMessageClass
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

TIMEOUT = 30  # seconds; only against hangs


class ReflectedClient:
    def __init__(self, channel: grpc.Channel) -> None:
        self.channel = channel
        self.database = ProtoReflectionDescriptorDatabase(channel)
        self.pool = DescriptorPool(self.database)

    def services(self) -> List[str]:
        return sorted(self.database.get_services())

    def call(self, full_method: str, request: Dict[str, Any], token: Optional[str] = None) -> Dict[str, Any]:
        """Calls a unary `package.Service.Method` with a request given as proto3 JSON."""
        method = self.pool.FindMethodByName(full_method)
        assert not method.client_streaming and not method.server_streaming, full_method
        request_class = GetMessageClass(method.input_type)
        response_class = GetMessageClass(method.output_type)
        stub = self.channel.unary_unary(
            f"/{method.containing_service.full_name}/{method.name}",
            request_serializer=request_class.SerializeToString,
            response_deserializer=response_class.FromString,
        )
        metadata: List[Tuple[str, str]] = [("authorization", f"Bearer {token}")] if token else []
        message = json_format.ParseDict(request, request_class(), descriptor_pool=self.pool)
        try:
            response = stub(message, metadata=metadata, timeout=TIMEOUT)
        except grpc.RpcError as error:
            sys.exit(f"{full_method}: {error.code().name}: {error.details()}")
        return json_format.MessageToDict(
            response,
            preserving_proto_field_name=True,
            always_print_fields_with_no_presence=True,
            descriptor_pool=self.pool,
        )


def main() -> None:
    address, email, password = sys.argv[1:4]
    client = ReflectedClient(grpc.insecure_channel(address))
    calls: Dict[str, Any] = {}

    def call(method: str, request: Dict[str, Any], token: Optional[str] = None) -> Dict[str, Any]:
        calls[method] = client.call(method, request, token)
        return calls[method]

    session = call("fileorganizer.v1.AuthService.Register", {"email": email, "password": password})
    token = session["access_token"]
    call("fileorganizer.v1.AuthService.GetCurrentUser", {}, token)
    call("fileorganizer.v1.SystemService.GetHealth", {})
    call("fileorganizer.v1.SystemService.GetStatus", {}, token)
    call("fileorganizer.v1.OperationService.ListOperations", {"page_size": 10}, token)
    call("fileorganizer.v1.FileService.ListCategories", {}, token)
    call("fileorganizer.v1.ReportService.GetUsageSummary", {}, token)
    call("grpc.health.v1.Health.Check", {"service": ""})
    print(json.dumps({"services": client.services(), "calls": calls}))


if __name__ == "__main__":
    main()
