import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { list, extract } from 'tar';

export interface ArchiveEntry {
  path: string;
  size: number;
  type: string;
  mtime: number;
  mode: number;
}

/** Entries of a tar file, in order (read with node-tar, an independent reader). */
export async function listArchive(file: string): Promise<ArchiveEntry[]> {
  const out: ArchiveEntry[] = [];
  await list({
    file,
    onReadEntry: (e) => {
      out.push({ path: e.path, size: e.size ?? 0, type: e.type, mtime: e.mtime ? Math.floor(e.mtime.getTime() / 1000) : -1, mode: e.mode ?? 0 });
    },
  });
  return out;
}

export interface OciLayoutContents {
  dir: string;
  entries: ArchiveEntry[];
  index: { schemaVersion: number; manifests: { mediaType: string; digest: string; size: number; platform?: Record<string, string>; annotations?: Record<string, string> }[] };
  dockerManifest: { Config: string; RepoTags: string[]; Layers: string[] }[];
  ociLayout: { imageLayoutVersion: string };
  readBlob(digest: string): Promise<Buffer>;
}

export async function extractArchive(file: string): Promise<OciLayoutContents> {
  const dir = await mkdtemp(join(tmpdir(), 'kp-archive-'));
  const entries = await listArchive(file);
  await extract({ file, cwd: dir });
  const readJson = async (p: string) => JSON.parse(await readFile(join(dir, p), 'utf8')) as unknown;
  return {
    dir,
    entries,
    index: (await readJson('index.json')) as OciLayoutContents['index'],
    dockerManifest: (await readJson('manifest.json')) as OciLayoutContents['dockerManifest'],
    ociLayout: (await readJson('oci-layout')) as OciLayoutContents['ociLayout'],
    readBlob: (digest: string) => readFile(join(dir, 'blobs', 'sha256', digest.replace(/^sha256:/, ''))),
  };
}
