/**
 * The shared fixtures name `/usr/local/bin/<repo basename>` as every image's entrypoint, but no layer
 * holds that file, and their layers are this machine's x86-64 files for every architecture: the build's
 * entrypoint check (src/engines/entrypoint.ts) refuses all of them, after reading every layer looking
 * for the file. This adds, once per fixture directory and deterministically, a small top layer with
 * that file as an ELF header for the entry's own machine (64 KB), so that the images pass the check
 * as real ones do. The check then reads only that small layer: a real image whose entrypoint sits in a
 * large layer costs the check one decompression of that layer, which this bench does not include.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { elfFor, fixtureTar, type FixturePlatform } from '../test/harness/fixtures.js';
import type { CatalogEntry } from './lib.js';

interface Desc {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { architecture: string; os: string; variant?: string };
}

const VERSION = '2';

export async function addEntrypointLayers(fixtures: string): Promise<void> {
  const marker = join(fixtures, 'entrypoint-layers.done');
  if (existsSync(marker) && (await readFile(marker, 'utf8')) === VERSION) return;
  // fixtures.py's own catalog is kept beside, so that a newer version of this layer starts from it.
  const orig = join(fixtures, 'catalog.fixtures-py.json');
  if (!existsSync(orig)) await copyFile(join(fixtures, 'catalog.json'), orig);
  const blobs = join(fixtures, 'blobs');
  const get = async (d: string) => readFile(join(blobs, d.slice(7)));
  const put = async (data: Buffer): Promise<{ digest: string; size: number }> => {
    const digest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
    await writeFile(join(blobs, digest.slice(7)), data);
    return { digest, size: data.length };
  };
  const catalog = JSON.parse(await readFile(orig, 'utf8')) as (CatalogEntry & { index: string; size: number })[];
  for (const c of catalog) {
    const name = c.repo.split('/').pop()!;
    const idx = JSON.parse((await get(c.index)).toString()) as { manifests: Desc[] };
    for (const e of idx.manifests) {
      const p = e.platform!;
      const platform = `linux/${p.architecture}${p.architecture === 'arm' && p.variant ? `/${p.variant}` : ''}` as FixturePlatform;
      const man = JSON.parse((await get(e.digest)).toString()) as { config: Desc; layers: Desc[] };
      const cfg = JSON.parse((await get(man.config.digest)).toString()) as { rootfs: { diff_ids: string[] }; history: unknown[] };
      const body = createHash('sha512').update(`${name} ${platform}`).digest();
      // The directories too: without them the check must read the lower layers to rule out a symlinked /usr.
      const dirs = ['usr/', 'usr/local/', 'usr/local/bin/'].map((path) => ({ path, type: 'dir' as const }));
      const tar = fixtureTar([...dirs, { path: `usr/local/bin/${name}`, type: 'file', data: elfFor(platform, Buffer.concat(Array.from({ length: 1024 }, () => body))), mode: 0o755 }]);
      const layer = await put(gzipSync(tar, { level: 6 }));
      cfg.rootfs.diff_ids.push(`sha256:${createHash('sha256').update(tar).digest('hex')}`);
      cfg.history.push({ created_by: 'bench: entrypoint layer' });
      man.config = { ...man.config, ...(await put(Buffer.from(JSON.stringify(cfg)))) };
      man.layers.push({ mediaType: man.layers[0]!.mediaType, ...layer });
      Object.assign(e, await put(Buffer.from(JSON.stringify(man))));
    }
    Object.assign(c, { index: (await put(Buffer.from(JSON.stringify(idx)))).digest, size: Buffer.byteLength(JSON.stringify(idx)) });
  }
  await writeFile(join(fixtures, 'catalog.json'), JSON.stringify(catalog, null, 1));
  await writeFile(marker, VERSION);
}
