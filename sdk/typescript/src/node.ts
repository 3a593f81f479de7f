/**
 * Node entry point: everything of `@fileorganizer/sdk`, plus native gRPC over HTTP/2
 * (`@connectrpc/connect-node`), which is the default transport here.
 */
import { createGrpcTransport } from "@connectrpc/connect-node";
import {
  FileOrganizerClient,
  grpcWebTransport,
  type ClientOptions,
  type TransportFactory,
} from "./client.js";

export * from "./index.js";

/** Native gRPC (HTTP/2 with prior knowledge for `http://`, TLS for `https://`). */
export const grpcTransport: TransportFactory = ({ baseUrl, interceptors }) =>
  createGrpcTransport({ baseUrl, interceptors });

export interface NodeClientOptions extends Omit<ClientOptions, "transport"> {
  /** `"grpc"` (default), `"grpc-web"` or a factory. */
  transport?: "grpc" | "grpc-web" | TransportFactory;
}

/** A client for the API at `options.baseUrl`, over native gRPC unless told otherwise. */
export function connect(options: NodeClientOptions): FileOrganizerClient {
  const choice = options.transport ?? "grpc";
  const transport =
    choice === "grpc" ? grpcTransport : choice === "grpc-web" ? grpcWebTransport : choice;
  return new FileOrganizerClient({ ...options, transport });
}

export * from "./node-transfers.js";
