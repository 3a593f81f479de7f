/// <reference types="node" />
/**
 * Filesystem transfers for Node (native gRPC: these RPCs stream from the client, which
 * grpc-web cannot): a folder uploaded concurrently and paced by the server's RetryInfo, an
 * archive imported as it is read, a large file uploaded through a resumable session, and a
 * folder downloaded as an archive into a file.
 */
import { randomUUID } from "node:crypto";
import { createReadStream } from "node:fs";
import { link, lstat, open, readdir, rename, stat, unlink } from "node:fs/promises";
import { basename, dirname, join, relative, sep } from "node:path";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { FileOrganizerClient } from "./client.js";
import {
  ArchiveFormat,
  FileConflictPolicy,
  type FileEntry,
  type FinishUploadResponse,
  type ImportArchiveResponse,
  type UploadRawFileResponse,
} from "./gen/fileorganizer/v1/file_pb.js";
import {
  archiveExtension,
  downloadArchive,
  paced,
  resumableUpload,
  type DownloadArchiveOptions,
  type PaceOptions,
  type ResumableOptions,
} from "./transfers.js";

/** Bytes per message of a raw upload or an archive import. */
const CHUNK = 1024 * 1024;

async function* chunksOf(path: string, start = 0, length?: number): AsyncGenerator<Uint8Array> {
  if (length === 0) return;
  const stream = createReadStream(path, {
    start,
    end: length === undefined ? undefined : start + length - 1,
    highWaterMark: CHUNK,
  });
  for await (const chunk of stream) yield new Uint8Array(chunk as Buffer);
}

export interface UploadFileOptions extends PaceOptions {
  /** Default SKIP_IF_IDENTICAL: content already at the path is not written again. */
  conflictPolicy?: FileConflictPolicy;
}

/** Uploads one file with UploadRawFile (its mtime kept), waiting out rate limits. */
export async function uploadFile(
  client: FileOrganizerClient,
  localPath: string,
  remotePath: string,
  options: UploadFileOptions = {},
): Promise<UploadRawFileResponse> {
  const info = await stat(localPath);
  return paced(
    remotePath,
    () => {
      const messages = async function* () {
        yield {
          path: remotePath,
          conflictPolicy: options.conflictPolicy ?? FileConflictPolicy.SKIP_IF_IDENTICAL,
          sizeBytes: BigInt(info.size),
          modifyTime: timestampFromMs(Math.floor(info.mtimeMs)),
        };
        for await (const data of chunksOf(localPath)) yield { content: { data } };
      };
      return client.files.uploadRawFile(messages());
    },
    options,
  );
}

export interface UploadFolderOptions extends UploadFileOptions {
  /** Uploads in flight at once (default 4). */
  concurrency?: number;
}

export interface FolderUploadResult {
  /** Files written. */
  uploaded: number;
  /** Files whose content was already at their path (nothing written). */
  identical: number;
  /** Rate-limit waits. */
  waits: number;
  /** The stored entries. */
  files: FileEntry[];
}

/** Every regular file under `root` (symlinks are not followed), sorted. */
async function filesUnder(root: string): Promise<string[]> {
  const out: string[] = [];
  const pending = [root];
  while (pending.length > 0) {
    const dir = pending.pop()!;
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) pending.push(path);
      else if (entry.isFile()) out.push(path);
    }
  }
  return out.sort();
}

/**
 * Uploads every file under `localDir` to the same relative path under `remoteDir`,
 * `concurrency` at a time; each waits out the server's rate limit instead of failing, and by
 * default content already stored at its path is skipped, so calling it again writes nothing
 * twice.
 */
export async function uploadFolder(
  client: FileOrganizerClient,
  localDir: string,
  remoteDir: string,
  options: UploadFolderOptions = {},
): Promise<FolderUploadResult> {
  if (!(await lstat(localDir)).isDirectory()) throw new Error(`${localDir} is not a folder`);
  const locals = await filesUnder(localDir);
  const base = remoteDir.replace(/^\/+|\/+$/g, "");
  const result: FolderUploadResult = { uploaded: 0, identical: 0, waits: 0, files: [] };
  const responses: UploadRawFileResponse[] = new Array(locals.length);
  let next = 0;
  const onWait: PaceOptions["onWait"] = (notice) => {
    result.waits++;
    options.onWait?.(notice);
  };
  const worker = async () => {
    while (next < locals.length) {
      const i = next++;
      const rel = relative(localDir, locals[i]).split(sep).join("/");
      responses[i] = await uploadFile(client, locals[i], base ? `${base}/${rel}` : rel, { ...options, onWait });
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, options.concurrency ?? 4) }, worker));
  for (const r of responses) {
    if (r.skippedIdentical) result.identical++;
    else result.uploaded++;
    if (r.file) result.files.push(r.file);
  }
  return result;
}

export interface ImportArchiveOptions extends PaceOptions {
  /** AUTO (the default) detects zip, tar, tar.gz and tar.zst. */
  format?: ArchiveFormat;
  /** Default SKIP_IF_IDENTICAL (a taken name is skipped and listed, never overwritten). */
  conflictPolicy?: FileConflictPolicy;
}

/**
 * Streams an archive file (or bytes) into `remoteDir` with ImportArchive; the server
 * extracts it as it arrives. One import is one request against the upload rate limit.
 */
export async function importArchive(
  client: FileOrganizerClient,
  archive: string | Uint8Array,
  remoteDir: string,
  options: ImportArchiveOptions = {},
): Promise<ImportArchiveResponse> {
  return paced(
    remoteDir,
    () => {
      const messages = async function* () {
        yield {
          path: remoteDir,
          format: options.format ?? ArchiveFormat.AUTO,
          conflictPolicy: options.conflictPolicy ?? FileConflictPolicy.SKIP_IF_IDENTICAL,
        };
        if (typeof archive === "string") {
          for await (const data of chunksOf(archive)) yield { body: { data } };
        } else {
          for (let at = 0; at < archive.length; at += CHUNK) yield { body: { data: archive.subarray(at, at + CHUNK) } };
        }
      };
      return client.files.importArchive(messages());
    },
    options,
  );
}

/**
 * Uploads a large file through a resumable session; after a dropped connection it asks for
 * the committed offset and continues by itself (see `resumableUpload`).
 */
export async function uploadLarge(
  client: FileOrganizerClient,
  localPath: string,
  remotePath: string,
  options: ResumableOptions = {},
): Promise<FinishUploadResponse> {
  const info = await stat(localPath);
  return resumableUpload(client, remotePath, info.size, (offset, length) => chunksOf(localPath, offset, length), {
    modifyTimeMs: Math.floor(info.mtimeMs),
    ...options,
  });
}

export interface SavedArchive {
  /** Where the archive was written. */
  path: string;
  /** Its size in bytes. */
  bytes: number;
}

/**
 * Downloads a folder (or an operation's destination) as one archive into `dest`: a file path
 * (written to a temporary file beside it, then renamed over it), or an existing directory,
 * where the file takes the name the server gives (`<folder>.zip`) and an existing file of
 * that name is never replaced (EEXIST). A download that fails midway leaves nothing behind.
 */
export async function downloadArchiveTo(
  client: FileOrganizerClient,
  dest: string,
  options: DownloadArchiveOptions = {},
): Promise<SavedArchive> {
  const inDir = await stat(dest).then(
    (s) => s.isDirectory(),
    () => false,
  );
  let name = `${basename(options.path || "files") || "files"}.${archiveExtension(options.format)}`;
  const tmp = join(inDir ? dest : dirname(dest), `.${basename(dest)}.${randomUUID()}.part`);
  const file = await open(tmp, "wx");
  let bytes = 0;
  try {
    try {
      const chunks = downloadArchive(client, {
        ...options,
        onName: (given) => {
          name = given;
          options.onName?.(given);
        },
      });
      for await (const chunk of chunks) {
        await file.write(chunk);
        bytes += chunk.length;
      }
    } finally {
      await file.close();
    }
    const target = inDir ? join(dest, name) : dest;
    if (inDir) {
      await link(tmp, target); // never replaces: EEXIST if the name is taken
    } else {
      await rename(tmp, target);
    }
    return { path: target, bytes };
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
}
