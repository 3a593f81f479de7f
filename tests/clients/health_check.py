"""Asks grpc.health.v1 for the status of each service, as an orchestrator's
probe would (grpcio-health-checking).

Usage: health_check.py HOST:PORT SERVICE...   ("" is the whole server)
Prints a JSON object {service: "SERVING" | "NOT_SERVING" | error text}.
"""

import json
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def main() -> None:
    channel = grpc.insecure_channel(sys.argv[1])
    stub = health_pb2_grpc.HealthStub(channel)
    result = {}
    for service in sys.argv[2:]:
        try:
            response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            result[service] = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
        except grpc.RpcError as error:
            result[service] = f"error: {error.code().name}"
    print(json.dumps(result))


if __name__ == "__main__":
    main()
