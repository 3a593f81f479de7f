// A minimal tar (POSIX ustar, with a pax `path` record for names longer than ustar holds)
// writer, enough to send a selection of files as ONE ImportArchive instead of one upload per
// file. Regular files only; folders are implied by the paths. Built as a list of parts for a
// Blob, so the files' bytes are not copied into one large buffer.

const BLOCK = 512;
const encoder = new TextEncoder();

function octal(value: number, width: number): string {
  return value.toString(8).padStart(width - 1, "0") + "\0";
}

function header(name: Uint8Array, size: number, mtimeSecs: number, type: "0" | "x"): Uint8Array<ArrayBuffer> {
  const h = new Uint8Array(BLOCK);
  const put = (text: string | Uint8Array, at: number) =>
    h.set(typeof text === "string" ? encoder.encode(text) : text, at);
  put(name.subarray(0, 100), 0);
  put(octal(0o644, 8), 100);
  put(octal(0, 8), 108);
  put(octal(0, 8), 116);
  put(octal(size, 12), 124);
  put(octal(Math.max(0, Math.floor(mtimeSecs)), 12), 136);
  put("        ", 148); // the checksum field counts as spaces while summing
  put(type, 156);
  put("ustar\0", 257);
  put("00", 263);
  const sum = h.reduce((a, b) => a + b, 0);
  put(octal(sum, 7) + " ", 148);
  return h;
}

function padding(size: number): Uint8Array<ArrayBuffer> {
  return new Uint8Array((BLOCK - (size % BLOCK)) % BLOCK);
}

/** A pax extended header record `"<len> path=<name>\n"`, whose length counts itself. */
function paxPath(name: Uint8Array): Uint8Array<ArrayBuffer> {
  const body = name.length + " path=\n".length;
  let len = body + String(body).length;
  if (String(len).length !== String(body).length) len++;
  const record = new Uint8Array(len);
  record.set(encoder.encode(`${len} path=`));
  record.set(name, len - name.length - 1);
  record[len - 1] = 0x0a;
  return record;
}

export interface TarEntry {
  /** The path inside the archive, `/`-separated, relative. */
  path: string;
  file: Blob;
  /** Modification time, milliseconds since the epoch. */
  lastModified: number;
}

/** The tar of `entries`, as a Blob. */
export function tarBlob(entries: readonly TarEntry[]): Blob {
  const parts: BlobPart[] = [];
  for (const entry of entries) {
    const name = encoder.encode(entry.path);
    const mtime = entry.lastModified / 1000;
    if (name.length > 100) {
      const record = paxPath(name);
      parts.push(header(encoder.encode("PaxHeader"), record.length, mtime, "x"), record, padding(record.length));
    }
    parts.push(header(name, entry.file.size, mtime, "0"), entry.file, padding(entry.file.size));
  }
  parts.push(new Uint8Array(2 * BLOCK));
  return new Blob(parts, { type: "application/x-tar" });
}
