"""gRPC end to end with Python grpcio (generic calls with raw-bytes messages, no code generation)
over an HTTPS listener that trusts the Trellis CA, to target groups of protocolVersion GRPC whose
targets are testbackends serving `/test.Echo/*` over h2c: unary, server streaming, client
streaming, a failing call's status (carried in trailers), routing on the gRPC method path, and a
fixed-response rule seen by a gRPC client."""

from types import SimpleNamespace

import grpc
import pytest

from backends import INGRESS, ServiceBuilder, fixed, forward, free_port, ip_target_group, path_prefix, wait_until_applied

TIMEOUT_S = 20


@pytest.fixture(scope="module")
def grpc_service(dp_server, dp_lattice, start_backend):
    lattice = dp_lattice
    main, other = start_backend("grpc-main", protocol="h2c", grpc=True), start_backend("grpc-other", protocol="h2c", grpc=True)
    tgs = []
    for backend in (main, other):
        tg = ip_target_group(lattice, protocol="HTTP", protocol_version="GRPC", targets=[backend])
        tgs.append(tg)
    svc = ServiceBuilder(lattice)
    port = free_port()
    listener = svc.listener("HTTPS", port, forward((tgs[0], 1)))
    # gRPC is routed on the HTTP/2 path, /package.Service/Method.
    svc.rule(listener, 10, path_prefix("/test.Echo/ClientStream", case_sensitive=True), forward((tgs[1], 1)))
    svc.rule(listener, 20, {"httpMatch": {"pathMatch": {"match": {"exact": "/test.Echo/Gone"}}}}, fixed(404))
    wait_until_applied(dp_server)
    return SimpleNamespace(name=svc.dns_name, port=port)


@pytest.fixture(scope="module")
def channel(dp_server, grpc_service):
    creds = grpc.ssl_channel_credentials(root_certificates=open(dp_server.ca_path, "rb").read())
    # Connect to the ingress address; the generated name is the TLS server name (SNI and
    # verification) and the :authority.
    options = [("grpc.ssl_target_name_override", grpc_service.name),
               ("grpc.default_authority", grpc_service.name),
               ("grpc.max_receive_message_length", 8 << 20)]
    ch = grpc.secure_channel(f"{INGRESS}:{grpc_service.port}", creds, options=options)
    yield ch
    ch.close()


def backend_of(call):
    return dict(call.initial_metadata()).get("x-backend")


def test_unary(channel):
    echo = channel.unary_unary("/test.Echo/Unary")
    reply, call = echo.with_call(b"hello lattice", timeout=TIMEOUT_S)
    assert reply == b"hello lattice"
    assert call.code() == grpc.StatusCode.OK
    assert backend_of(call) == "grpc-main"
    big = bytes(range(256)) * 4096  # 1 MiB
    assert echo(big, timeout=TIMEOUT_S) == big


def test_server_streaming(channel):
    stream = channel.unary_stream("/test.Echo/ServerStream")
    call = stream(b"tick", metadata=(("x-count", "25"),), timeout=TIMEOUT_S)
    assert list(call) == [b"tick"] * 25
    assert call.code() == grpc.StatusCode.OK
    assert backend_of(call) == "grpc-main"


def test_client_streaming_is_routed_by_method(channel):
    gather = channel.stream_unary("/test.Echo/ClientStream")
    reply, call = gather.with_call(iter([b"ab", b"", b"cd", b"ef"]), timeout=TIMEOUT_S)
    assert reply == b"abcdef"
    assert backend_of(call) == "grpc-other"


@pytest.mark.parametrize("metadata,code", [
    ((), grpc.StatusCode.INTERNAL),
    ((("x-grpc-status", "5"),), grpc.StatusCode.NOT_FOUND),
])
def test_failing_call_status(channel, metadata, code):
    fail = channel.unary_unary("/test.Echo/Fail")
    with pytest.raises(grpc.RpcError) as excinfo:
        fail(b"x", metadata=metadata, timeout=TIMEOUT_S)
    assert excinfo.value.code() == code
    assert excinfo.value.details() == "requested failure"


def test_unknown_method_status(channel):
    with pytest.raises(grpc.RpcError) as excinfo:
        channel.unary_unary("/test.Echo/Nope")(b"x", timeout=TIMEOUT_S)
    assert excinfo.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_fixed_response_rule(channel):
    # HTTP 404 without gRPC framing maps to UNIMPLEMENTED in every gRPC client.
    with pytest.raises(grpc.RpcError) as excinfo:
        channel.unary_unary("/test.Echo/Gone")(b"x", timeout=TIMEOUT_S)
    assert excinfo.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_many_calls_on_one_connection(channel):
    echo = channel.unary_unary("/test.Echo/Unary")
    futures = [echo.future(f"call {i}".encode(), timeout=TIMEOUT_S) for i in range(100)]
    assert [f.result() for f in futures] == [f"call {i}".encode() for i in range(100)]
