import { createHash } from 'node:crypto';
import { parseImageRef } from '../manifest/image-ref.js';
import type { BundleInventory } from './inventory.js';

/**
 * A CycloneDX 1.5 JSON SBOM of one bundle, from its inventory (bundle.json): every image and every
 * binary as a component with its SHA-256 and package URL. Deterministic: the only timestamp is the
 * bundle's sourceDateEpoch, and the serial number is a name-based (version 5) UUID of the SHA-256 of the
 * document's own content, so the same bundle always gets the same SBOM bytes.
 */
export const SBOM_PATH = 'sbom.cdx.json';

/** Namespace for the serial number's UUIDv5 (the RFC 4122 URL namespace). */
const NS_URL = '6ba7b811-9dad-11d1-80b4-00c04fd430c8';

export function uuidV5(name: string, namespace = NS_URL): string {
  const ns = Buffer.from(namespace.replace(/-/g, ''), 'hex');
  const h = createHash('sha1').update(ns).update(name, 'utf8').digest().subarray(0, 16);
  h[6] = ((h[6] ?? 0) & 0x0f) | 0x50;
  h[8] = ((h[8] ?? 0) & 0x3f) | 0x80;
  const x = h.toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

const hex = (digest: string) => digest.replace(/^sha256:/, '');

export function makeSbom(inv: BundleInventory): object {
  const images = inv.images.list.map((i) => imageComponent(inv, i));
  const binaries = inv.binaries.map(binaryComponent);
  const body = {
    bomFormat: 'CycloneDX',
    specVersion: '1.5',
    version: 1,
    metadata: {
      timestamp: new Date(inv.sourceDateEpoch * 1000).toISOString().replace(/\.000Z$/, 'Z'),
      tools: { components: [{ type: 'application', name: 'kubeprepare', version: inv.kubeprepareVersion }] },
      component: {
        type: 'file',
        'bom-ref': `bundle:${inv.name}`,
        name: inv.name,
        version: inv.components.kubeedge?.version ?? inv.kubeprepareVersion,
        description: `KubePrepare ${inv.side} bundle for ${inv.platform}`,
        properties: [
          { name: 'kubeprepare:side', value: inv.side },
          { name: 'kubeprepare:platform', value: inv.platform },
          ...Object.entries(inv.components).map(([k, v]) => ({ name: `kubeprepare:component:${k}`, value: v.version })),
        ],
      },
    },
    components: [...images, ...binaries],
    dependencies: [{ ref: `bundle:${inv.name}`, dependsOn: [...images, ...binaries].map((c) => c['bom-ref']) }],
  };
  const contentHash = createHash('sha256').update(JSON.stringify(body)).digest('hex');
  // serialNumber first after specVersion, as CycloneDX documents usually order it.
  const { bomFormat, specVersion, ...rest } = body;
  return { bomFormat, specVersion, serialNumber: `urn:uuid:${uuidV5(`sha256:${contentHash}`)}`, ...rest };
}

/** One image of the bundle as a CycloneDX `container` component. */
function imageComponent(inv: BundleInventory, i: BundleInventory['images']['list'][number]) {
  const r = parseImageRef(i.ref);
  return {
    type: 'container',
    'bom-ref': i.purl,
    name: `${r.registry}/${r.repository}`,
    version: r.tag ?? i.manifestDigest,
    hashes: [{ alg: 'SHA-256', content: hex(i.manifestDigest) }],
    purl: i.purl,
    properties: [
      { name: 'kubeprepare:ref', value: i.ref },
      { name: 'kubeprepare:component', value: i.component },
      ...(i.role ? [{ name: 'kubeprepare:role', value: i.role }] : []),
      { name: 'kubeprepare:platform', value: i.platform },
      // A lower arm variant than the bundle's (the image publishes no image for the bundle's platform).
      ...(i.platform && i.platform !== inv.platform ? [{ name: 'kubeprepare:platformTakenFor', value: inv.platform }] : []),
      { name: 'kubeprepare:configDigest', value: i.configDigest },
      { name: 'kubeprepare:size', value: String(i.size) },
      ...(i.engine ? [{ name: 'kubeprepare:engine', value: i.engine }] : []),
      ...(inv.images.archive ? [{ name: 'kubeprepare:archive', value: inv.images.archive }] : []),
    ],
  };
}

/** One binary of the bundle as a CycloneDX `application` component. */
function binaryComponent(b: BundleInventory['binaries'][number]) {
  return {
    type: 'application',
    'bom-ref': b.purl,
    name: b.name,
    version: b.version,
    hashes: [{ alg: 'SHA-256', content: b.sha256 }],
    purl: b.purl,
    externalReferences: [{ type: 'distribution', url: b.url, hashes: [{ alg: 'SHA-256', content: b.downloadSha256 }] }],
    properties: [
      { name: 'kubeprepare:component', value: b.component },
      { name: 'kubeprepare:path', value: b.path },
      { name: 'kubeprepare:size', value: String(b.size) },
      ...(b.extractedFrom ? [{ name: 'kubeprepare:extractedFrom', value: b.extractedFrom }] : []),
    ],
  };
}
