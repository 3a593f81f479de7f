// "Download as zip": the folder being browsed, as one DownloadArchive over grpc-web, handed to
// the browser as a file download. grpc-web gives the page the archive's bytes, not a stream
// to disk, so the zip is gathered into a Blob (browsers keep large Blobs on disk) and then
// saved through a temporary object URL.
import { dispositionName, downloadArchive, type FileOrganizerClient } from "@fileorganizer/sdk";

/** A download handed to the browser. */
export interface Saved {
  /** The file name offered to the browser (`<folder>.zip`, `files.zip` for the root). */
  name: string;
  bytes: number;
}

/** Downloads `path` ("" for the root) as a zip and starts the browser's download of it. */
export async function downloadFolderZip(
  client: FileOrganizerClient,
  path: string,
  onProgress?: (bytes: number) => void,
): Promise<Saved> {
  // The server names the file (content-disposition, which its CORS exposes to the page);
  // the same name is made here for a server that does not.
  let name = `${path.split("/").pop() || "files"}.zip`;
  const parts: BlobPart[] = [];
  let bytes = 0;
  for await (const chunk of downloadArchive(client, { path, onName: (given) => (name = given) })) {
    parts.push(chunk as Uint8Array<ArrayBuffer>);
    bytes += chunk.length;
    onProgress?.(bytes);
  }
  saveBlob(new Blob(parts, { type: "application/zip" }), name);
  return { name, bytes };
}

/**
 * Hands bytes gathered by the page to the browser as a file download named `name`, through a
 * temporary object URL (grpc-web gives the page bytes, not a stream to disk).
 */
export function saveBlob(blob: Blob, name: string): void {
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  link.hidden = true;
  document.body.append(link);
  link.click();
  link.remove();
  // The download has its own reference once it started; the URL is no longer needed.
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/**
 * Downloads one file (DownloadFile: a stream of HttpBody chunks, the first with the content
 * type) and starts the browser's download of it, under the server's name for it
 * (content-disposition) or else the path's last part.
 */
export async function downloadFile(client: FileOrganizerClient, path: string): Promise<Saved> {
  let name = path.split("/").pop() || "download";
  let type = "application/octet-stream";
  const parts: BlobPart[] = [];
  let bytes = 0;
  const stream = client.files.downloadFile(
    { path },
    {
      onHeader: (headers) => {
        const given = dispositionName(headers.get("content-disposition"));
        if (given) name = given;
      },
    },
  );
  for await (const chunk of stream) {
    if (chunk.contentType) type = chunk.contentType;
    parts.push(chunk.data as Uint8Array<ArrayBuffer>);
    bytes += chunk.data.length;
  }
  saveBlob(new Blob(parts, { type }), name);
  return { name, bytes };
}
