/**
 * Transfers that work in any runtime: waiting out the server's rate limit with the delay of
 * its RetryInfo, and the resumable-upload loop (CreateUpload, AppendUpload at the committed
 * offset, GetUpload after a dropped connection, FinishUpload). The Node entry point
 * (`@fileorganizer/sdk/node`) adds the filesystem helpers built on these: uploadFolder,
 * importArchive, uploadLarge and downloadArchiveTo. `downloadArchive` (a folder as a zip or
 * tar, as an async iterable of bytes) works over grpc-web too.
 *
 * Only RESOURCE_EXHAUSTED with reason RATE_LIMITED is waited out: any other (a full quota, a
 * zip bomb) is thrown at once, since waiting would not help.
 */
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import type { FileOrganizerClient } from "./client.js";
import { errorDetails } from "./errors.js";
import {
  ArchiveFormat,
  FileConflictPolicy,
  type FinishUploadResponse,
} from "./gen/fileorganizer/v1/file_pb.js";

/** Told each time a transfer waits out a rate limit. */
export interface WaitNotice {
  /** What was being sent (a remote path). */
  what: string;
  /** How long it waits, in milliseconds (the RetryInfo delay). */
  delayMs: number;
  /** 1 for the first wait of this request, 2 for the second, … */
  attempt: number;
}

export interface PaceOptions {
  /** Most waits per request before the refusal is thrown (default 30). */
  maxRetries?: number;
  /** Called before each wait (e.g. to show "waiting 20 s for the upload limit"). */
  onWait?: (notice: WaitNotice) => void;
  /** Aborts a wait (the promise rejects with the signal's reason). */
  signal?: AbortSignal;
}

/** Milliseconds to wait when a RATE_LIMITED refusal carries no RetryInfo. */
const DEFAULT_RETRY_MS = 1000;

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** The RetryInfo delay (ms) of a RATE_LIMITED refusal; undefined for any other error. */
export function rateLimitDelayMs(error: unknown): number | undefined {
  if (!(error instanceof ConnectError) || error.code !== Code.ResourceExhausted) return undefined;
  const d = errorDetails(error);
  if (d.reason !== "RATE_LIMITED") return undefined;
  return d.retryDelayMs ?? DEFAULT_RETRY_MS;
}

/**
 * Runs `send` (which must make its request from scratch each time), waiting out RATE_LIMITED
 * refusals with their RetryInfo delay, at most `maxRetries` times.
 */
export async function paced<T>(what: string, send: () => Promise<T>, options: PaceOptions = {}): Promise<T> {
  const maxRetries = options.maxRetries ?? 30;
  for (let attempt = 1; ; attempt++) {
    try {
      return await send();
    } catch (err) {
      const delayMs = rateLimitDelayMs(err);
      if (delayMs === undefined || attempt > maxRetries) throw err;
      options.onWait?.({ what, delayMs, attempt });
      await sleep(delayMs, options.signal);
    }
  }
}

/**
 * Codes after which a resumable upload asks for its committed offset and goes on: a cut
 * connection surfaces as UNAVAILABLE, or as ABORTED (connect-node's ECONNRESET), CANCELED or
 * INTERNAL (a broken HTTP/2 stream). Resuming is always safe: the server's committed offset
 * decides what is sent next.
 */
const RESUMABLE = new Set([
  Code.Unavailable,
  Code.Aborted,
  Code.Canceled,
  Code.DeadlineExceeded,
  Code.Unknown,
  Code.Internal,
]);

export interface ResumableOptions extends PaceOptions {
  /** Conflict policy at FinishUpload (default SKIP_IF_IDENTICAL: a retry never makes a copy). */
  conflictPolicy?: FileConflictPolicy;
  /** Lower-case hex blake3 of the whole file, checked by FinishUpload (DATA_LOSS on mismatch). */
  contentHash?: string;
  /** The stored file's modification time (ms since the epoch). */
  modifyTimeMs?: number;
  /** Bytes per AppendUpload call (default 8 MiB). */
  chunkSize?: number;
  /** Most resumptions after dropped connections (default 20). */
  maxResumes?: number;
  /** Told the offset each time the upload resumes. */
  onResume?: (offset: number) => void;
}

/**
 * A resumable upload of `size` bytes that `read(offset, length)` yields in pieces (each an
 * async iterable of chunks). After UNAVAILABLE (a cut connection) it asks GetUpload for the
 * committed offset and continues from there. Needs a transport with client streaming
 * (native gRPC; not grpc-web).
 */
export async function resumableUpload(
  client: FileOrganizerClient,
  remotePath: string,
  size: number,
  read: (offset: number, length: number) => AsyncIterable<Uint8Array>,
  options: ResumableOptions = {},
): Promise<FinishUploadResponse> {
  const chunkSize = options.chunkSize ?? 8 * 1024 * 1024;
  const maxResumes = options.maxResumes ?? 20;
  const session = await paced(
    remotePath,
    () =>
      client.files.createUpload({
        upload: {
          path: remotePath,
          sizeBytes: BigInt(size),
          contentHash: options.contentHash ?? "",
          conflictPolicy: options.conflictPolicy ?? FileConflictPolicy.SKIP_IF_IDENTICAL,
          modifyTime: options.modifyTimeMs === undefined ? undefined : timestampFromMs(options.modifyTimeMs),
        },
      }),
    options,
  );
  let offset = Number(session.committedOffset);
  let resumes = 0;
  for (;;) {
    try {
      while (offset < size) {
        const length = Math.min(chunkSize, size - offset);
        const start = offset;
        const messages = async function* () {
          yield { name: session.name, offset: BigInt(start) };
          for await (const data of read(start, length)) yield { content: { data } };
        };
        offset = Number((await client.files.appendUpload(messages())).committedOffset);
      }
      return await client.files.finishUpload({ name: session.name });
    } catch (err) {
      if (!(err instanceof ConnectError) || resumes >= maxResumes) throw err;
      const details = errorDetails(err);
      const committed = details.metadata["committed_offset"];
      if (err.code === Code.FailedPrecondition && committed !== undefined) {
        offset = Number(committed);
      } else if (err.code === Code.Aborted && details.reason === "RESOURCE_BUSY") {
        // The request of a cut connection still holds the session on the server: wait as it
        // says, then go on from the offset it committed.
        await sleep(details.retryDelayMs ?? DEFAULT_RETRY_MS);
        offset = await committedOffset(client, session.name, maxResumes);
      } else if (RESUMABLE.has(err.code)) {
        offset = await committedOffset(client, session.name, maxResumes);
      } else {
        throw err;
      }
      resumes++;
      options.onResume?.(offset);
    }
  }
}

async function committedOffset(client: FileOrganizerClient, name: string, attempts: number): Promise<number> {
  let delay = 200;
  for (let attempt = 0; ; attempt++) {
    try {
      return Number((await client.files.getUpload({ name })).committedOffset);
    } catch (err) {
      if (!(err instanceof ConnectError) || !RESUMABLE.has(err.code) || attempt >= attempts) throw err;
      await sleep(delay);
      delay = Math.min(delay * 2, 5000);
    }
  }
}

export interface DownloadArchiveOptions {
  /** The folder to download ("" or unset: the whole storage). */
  path?: string;
  /** `operations/{id}`: that operation's destination folder instead of `path`. */
  operation?: string;
  /** ZIP (the default), TAR, TAR_GZIP or TAR_ZSTD. */
  format?: ArchiveFormat;
  /** Stops the download (the server stops walking the folder). */
  signal?: AbortSignal;
  /** Told the file name the server gives the archive (`<folder>.zip`), when it gives one. */
  onName?: (name: string) => void;
}

/** The file name extension of an archive format (ZIP for UNSPECIFIED). */
export function archiveExtension(format: ArchiveFormat = ArchiveFormat.ZIP): string {
  switch (format) {
    case ArchiveFormat.TAR:
      return "tar";
    case ArchiveFormat.TAR_GZIP:
      return "tar.gz";
    case ArchiveFormat.TAR_ZSTD:
      return "tar.zst";
    default:
      return "zip";
  }
}

/**
 * The file name in a `content-disposition` value: the UTF-8 `filename*` when present, else
 * `filename`, reduced to its last component; undefined when there is none.
 */
export function dispositionName(value: string | null | undefined): string | undefined {
  if (!value) return undefined;
  const star = /filename\*=UTF-8''([^;]+)/i.exec(value);
  let name: string | undefined;
  if (star) {
    try {
      name = decodeURIComponent(star[1].trim());
    } catch {
      name = undefined;
    }
  }
  name ??= /filename="([^"]*)"/i.exec(value)?.[1];
  name = name?.replaceAll("\\", "/").split("/").pop();
  return name && name !== "." && name !== ".." ? name : undefined;
}

/**
 * Downloads a folder (or an operation's destination) as one archive with DownloadArchive,
 * yielding its bytes as the server writes them (about 1 MiB at a time): nothing is held
 * beyond one message. Counts once against the server's export rate limit. A failure midway
 * throws (the bytes yielded so far are no complete archive).
 */
export async function* downloadArchive(
  client: FileOrganizerClient,
  options: DownloadArchiveOptions = {},
): AsyncGenerator<Uint8Array> {
  const stream = client.files.downloadArchive(
    {
      path: options.path ?? "",
      operation: options.operation ?? "",
      format: options.format ?? ArchiveFormat.ZIP,
    },
    {
      signal: options.signal,
      onHeader: (headers) => {
        const name = dispositionName(headers.get("content-disposition"));
        if (name !== undefined) options.onName?.(name);
      },
    },
  );
  for await (const body of stream) {
    if (body.data.length > 0) yield body.data;
  }
}
