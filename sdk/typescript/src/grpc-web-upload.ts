/**
 * Client-streaming calls from a browser, over grpc-web. Connect's grpc-web transport refuses
 * client streams ("The fetch API does not support streaming request bodies"), but a grpc-web
 * request body may carry several messages, one envelope after another: the server (tonic-web)
 * reads them as a client stream that ends with the body. The whole body is built before it is
 * sent (a Blob of the envelopes, so not one large copy), so this is for bodies a browser can
 * hold: an archive of a selection of files, not a disk image (use the REST raw-body routes or
 * a resumable upload for those).
 *
 * Used by the console to import a selection of files as ONE ImportArchive instead of one
 * upload per file (the server's upload rate limit counts requests).
 */
import { create, fromBinary, toBinary, type DescMessage, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { findTrailerError } from "@connectrpc/connect/protocol-grpc";
import { trailerParse } from "@connectrpc/connect/protocol-grpc-web";
import type { FileOrganizerClient } from "./client.js";
import { unreachableError } from "./errors.js";
import {
  ArchiveFormat,
  FileConflictPolicy,
  FileService,
  ImportArchiveRequestSchema,
  ImportArchiveResponseSchema,
  type ImportArchiveResponse,
} from "./gen/fileorganizer/v1/file_pb.js";
import { paced, type PaceOptions } from "./transfers.js";

/** Bytes of the archive per ImportArchive message (the server takes up to 4 MiB). */
const ARCHIVE_MESSAGE_BYTES = 1024 * 1024;

function envelope(flags: number, data: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(5 + data.length);
  out[0] = flags;
  new DataView(out.buffer).setUint32(1, data.length);
  out.set(data, 5);
  return out;
}

/**
 * Calls the client-streaming `method` of `service` with `messages` over grpc-web, with the
 * client's credentials. Errors are ConnectErrors with the server's details (RetryInfo, …).
 */
export async function grpcWebClientStream<I extends DescMessage, O extends DescMessage>(
  client: FileOrganizerClient,
  method: string,
  input: I,
  output: O,
  messages: Iterable<MessageInitShape<I>>,
  signal?: AbortSignal,
): Promise<MessageShape<O>> {
  const parts: Uint8Array<ArrayBuffer>[] = [];
  for (const message of messages) parts.push(envelope(0, toBinary(input, create(input, message))));
  const headers = new Headers({
    "content-type": "application/grpc-web+proto",
    "x-grpc-web": "1",
    ...(await client.credentialHeaders()),
  });
  let response: Response;
  try {
    response = await fetch(`${client.baseUrl}/${method}`, {
      method: "POST",
      headers,
      body: new Blob(parts),
      signal,
    });
  } catch (err) {
    throw unreachableError(err, client.baseUrl) ?? new ConnectError(`${method}: ${String(err)}`, Code.Unavailable);
  }
  const early = findTrailerError(response.headers);
  if (early) throw early;
  if (!response.ok) throw new ConnectError(`${method}: HTTP ${response.status}`, Code.Unavailable);
  const body = new Uint8Array(await response.arrayBuffer());
  let result: MessageShape<O> | undefined;
  for (let at = 0; at + 5 <= body.length; ) {
    const flags = body[at];
    const length = new DataView(body.buffer, body.byteOffset + at + 1, 4).getUint32(0);
    const data = body.subarray(at + 5, at + 5 + length);
    at += 5 + length;
    if (flags & 0x80) {
      const error = findTrailerError(trailerParse(data));
      if (error) throw error;
    } else {
      result = fromBinary(output, data);
    }
  }
  if (!result) throw new ConnectError(`${method}: the response carried no message`, Code.Internal);
  return result;
}

export interface BrowserImportOptions extends PaceOptions {
  /** AUTO (the default) detects zip, tar, tar.gz and tar.zst. */
  format?: ArchiveFormat;
  /** Default SKIP_IF_IDENTICAL: importing the same archive again stores no copies. */
  conflictPolicy?: FileConflictPolicy;
}

/**
 * Imports an archive held in memory (e.g. built in the browser) into `remoteDir` with one
 * ImportArchive over grpc-web, waiting out the upload rate limit (RetryInfo) instead of
 * failing.
 */
export async function importArchiveBytes(
  client: FileOrganizerClient,
  archive: Uint8Array,
  remoteDir: string,
  options: BrowserImportOptions = {},
): Promise<ImportArchiveResponse> {
  const messages = function* (): Generator<MessageInitShape<typeof ImportArchiveRequestSchema>> {
    yield {
      path: remoteDir,
      format: options.format ?? ArchiveFormat.AUTO,
      conflictPolicy: options.conflictPolicy ?? FileConflictPolicy.SKIP_IF_IDENTICAL,
    };
    for (let at = 0; at < archive.length; at += ARCHIVE_MESSAGE_BYTES) {
      yield { body: { data: archive.subarray(at, at + ARCHIVE_MESSAGE_BYTES) } };
    }
  };
  const method = `${FileService.typeName}/${FileService.method.importArchive.name}`;
  const send = () =>
    grpcWebClientStream(client, method, ImportArchiveRequestSchema, ImportArchiveResponseSchema, messages(), options.signal);
  // Over HTTP/1.1 the server answers a refusal (the rate limit) before it reads the body and
  // then closes the connection; with a body larger than the socket buffers the fetch fails
  // without the answer, so the RetryInfo is lost. Such a failure is retried after a growing
  // delay (1, 2, 4, … 30 s; at most maxRetries times): an import is safe to repeat, since
  // names already taken are skipped, never overwritten or copied.
  const maxRetries = options.maxRetries ?? 30;
  for (let attempt = 1; ; attempt++) {
    try {
      return await paced(remoteDir, send, options);
    } catch (err) {
      const lost = err instanceof ConnectError && err.code === Code.Unavailable && err.rawMessage.includes("fetch");
      if (!lost || attempt > maxRetries) throw err;
      const delayMs = Math.min(1000 * 2 ** (attempt - 1), 30_000);
      options.onWait?.({ what: remoteDir, delayMs, attempt });
      await new Promise((resolve) => setTimeout(resolve, delayMs));
    }
  }
}
