"""The generated messages and stubs, re-exported: ``pb.auth``, ``pb.automation``, ``pb.operation``, ``pb.file``,
``pb.report``, ``pb.rule``, ``pb.system``, ``pb.errors`` (``*_pb2``), ``pb.*_grpc`` (service stubs) and
``pb.httpbody`` (``google.api.HttpBody``, the raw-bytes message of uploads and archives)."""

from google.api import httpbody_pb2 as httpbody

from fileorganizer._gen.v1 import auth_pb2 as auth
from fileorganizer._gen.v1 import auth_pb2_grpc as auth_grpc
from fileorganizer._gen.v1 import automation_pb2 as automation
from fileorganizer._gen.v1 import automation_pb2_grpc as automation_grpc
from fileorganizer._gen.v1 import errors_pb2 as errors
from fileorganizer._gen.v1 import file_pb2 as file
from fileorganizer._gen.v1 import file_pb2_grpc as file_grpc
from fileorganizer._gen.v1 import operation_pb2 as operation
from fileorganizer._gen.v1 import operation_pb2_grpc as operation_grpc
from fileorganizer._gen.v1 import report_pb2 as report
from fileorganizer._gen.v1 import report_pb2_grpc as report_grpc
from fileorganizer._gen.v1 import rule_pb2 as rule
from fileorganizer._gen.v1 import rule_pb2_grpc as rule_grpc
from fileorganizer._gen.v1 import system_pb2 as system
from fileorganizer._gen.v1 import system_pb2_grpc as system_grpc

__all__ = [
    "auth",
    "auth_grpc",
    "automation",
    "automation_grpc",
    "errors",
    "file",
    "file_grpc",
    "httpbody",
    "operation",
    "operation_grpc",
    "report",
    "report_grpc",
    "rule",
    "rule_grpc",
    "system",
    "system_grpc",
]
