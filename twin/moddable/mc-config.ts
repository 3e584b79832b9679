// `mc/config`: the manifest's "config" section, as mcconfig compiles it into the image.
import { loadManifest } from "../runtime/manifest.ts";

const config: Record<string, unknown> = Object.freeze(structuredClone({ ...loadManifest().config }));

export default config;
