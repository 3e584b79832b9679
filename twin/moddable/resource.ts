// Moddable's `Resource`: read-only data the manifest's "resources" section puts into the image,
// looked up by file name. On a board the bytes stay in flash; here they are a copy.
import { readFileSync } from "node:fs";
import { loadManifest } from "../runtime/manifest.ts";

const resources = loadManifest().resources;

export class ResourceError extends Error {
  override name = "ResourceError";
}

export default class Resource {
  constructor(path: string) {
    if (typeof path !== "string") throw new TypeError("Resource: the path must be a string");
    const source = resources.get(path);
    if (source === undefined)
      throw new ResourceError(`Resource "${path}" is not in the image: list it under "resources" in manifest.json`);
    const bytes = readFileSync(source);
    return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as unknown as Resource;
  }

  static exists(path: string): boolean {
    return typeof path === "string" && resources.has(path);
  }
}
