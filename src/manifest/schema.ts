import { z } from 'zod';
import { ARCHES } from '../platform.js';
import { parseImageRef, ImageRefError } from './image-ref.js';

/**
 * The versions manifest (`manifests/versions.yaml`). Every object is strict: an unknown key is an
 * error, so a typo never passes silently. URL templates take `{version}`, `{versionBare}` (no leading
 * `v`), `{arch}` (amd64|arm64|arm) and the binary's own `archVars` (per-arch spellings upstream uses,
 * e.g. K3s's `-armhf`).
 */

const SIDES = ['cloud', 'edge'] as const;
export type Side = (typeof SIDES)[number];
export const ALL_SIDES: readonly Side[] = SIDES;

const hex64 = z.string().regex(/^[a-f0-9]{64}$/, 'a SHA-256 digest: 64 lowercase hex digits');
const archEnum = z.enum(ARCHES);
const urlTemplate = z
  .string()
  .min(1)
  .regex(/^https?:\/\//, 'an http:// or https:// URL template')
  .refine((s) => !/\{(?!(?:version|versionBare|arch|[A-Za-z][A-Za-z0-9_]*)\})/.test(s), 'placeholders of the form {name}');

const imageRefString = z.string().superRefine((s, ctx) => {
  try {
    parseImageRef(s);
  } catch (e) {
    if (e instanceof ImageRefError) ctx.addIssue({ code: 'custom', message: `an image reference: ${e.message}` });
    else throw e;
  }
});

/** Roles templates refer to (RenderContext.images). */
export const IMAGE_ROLES = [
  'cloudcore',
  'iptablesManager',
  'controllerManager',
  'admission',
  'installationPackage',
  'pause',
  'mosquitto',
  'edgemeshAgent',
  'metricsServer',
] as const;
export type ImageRole = (typeof IMAGE_ROLES)[number];

const imageEntry = z.union([
  imageRefString,
  z
    .object({
      ref: imageRefString,
      role: z.enum(IMAGE_ROLES).optional(),
      /** `never`: the image must already be in the Docker daemon (docker engine only). */
      pull: z.enum(['always', 'never']).optional(),
      /** Which engine fetches this image; default: the build's --engine. */
      engine: z.enum(['registry', 'docker']).optional(),
    })
    .strict(),
]);

/** Roles templates refer to (RenderContext.files). */
export const BINARY_ROLES = ['k3s', 'k3sInstallScript', 'keadm', 'edgecore', 'containerdTarball', 'runc', 'cniPluginsTarball'] as const;
export type BinaryRole = (typeof BINARY_ROLES)[number];

const sha256Source = z.union([
  z
    .object({
      /** URL template of a checksum file: `sha256sum` lines (`<hex>  <name>`) or a bare hex digest. */
      checksumUrl: urlTemplate,
      /** Name to look up in the checksum file; default: the last path segment of the binary's URL. */
      entry: z.string().min(1).optional(),
      /** Digest algorithm of the checksum file (KubeEdge publishes SHA-512). The bundle records SHA-256 too. */
      algorithm: z.enum(['sha256', 'sha512']).optional(),
    })
    .strict(),
  z
    .object({
      /** Digests pinned in the manifest, per arch (or `any` for an arch-independent file). */
      pinned: z.partialRecord(z.enum([...ARCHES, 'any']), hex64),
    })
    .strict(),
]);

const binaryEntry = z
  .object({
    name: z.string().regex(/^[a-z0-9][a-z0-9._-]*$/, 'a lowercase name: letters, digits, . _ -'),
    role: z.enum(BINARY_ROLES).optional(),
    sides: z.array(z.enum(SIDES)).min(1),
    /** Version for this file when it is not the component's (defaults to the component's). */
    version: z.string().min(1).optional(),
    url: urlTemplate,
    archVars: z.record(z.string().regex(/^[A-Za-z][A-Za-z0-9_]*$/), z.record(archEnum, z.string())).optional(),
    /** Arches upstream publishes this file for; others get no copy (and the plan says so). Default: all. */
    arches: z.array(archEnum).min(1).optional(),
    /** Path (template) of one member inside a .tar.gz/.tgz download to ship instead of the archive. */
    extract: z.string().min(1).optional(),
    /** Destination inside the bundle, relative to its top directory (template). */
    dest: z.string().regex(/^(bin|runtime|scripts|manifests)\/[^\s]+$/, 'a path under bin/, runtime/, scripts/ or manifests/'),
    mode: z.union([z.literal(493), z.literal(420), z.enum(['0755', '0644'])]).optional(),
    sha256: sha256Source,
  })
  .strict();

const component = z
  .object({
    version: z.string().regex(/^v?\d+\.\d+\.\d+[\w.+-]*$/, 'a release version like v1.22.0'),
    /** Why this version: free text, shown by `plan`. */
    note: z.string().optional(),
    images: z.partialRecord(z.enum(SIDES), z.array(imageEntry)).optional(),
    binaries: z.array(binaryEntry).optional(),
  })
  .strict();

export const manifestSchema = z
  .object({
    schemaVersion: z.literal(1),
    /** Seconds since epoch used as every tarball entry's mtime; SOURCE_DATE_EPOCH overrides it. */
    sourceDateEpoch: z.number().int().nonnegative(),
    /** Rewrites binary URL prefixes (a local mirror, a proxy): first matching `from` wins. */
    binaryMirrors: z.array(z.object({ from: z.string().url(), to: z.string().url() }).strict()).optional(),
    /** A registries.yaml (K3s/containerd format) for image mirrors, relative to this file. */
    registries: z.string().min(1).optional(),
    components: z
      .object({
        k3s: component,
        kubeedge: component,
        edgemesh: component,
        metricsServer: component,
      })
      .catchall(component),
  })
  .strict();

export type Manifest = z.infer<typeof manifestSchema>;
export type ComponentSpec = z.infer<typeof component>;
export type BinarySpec = z.infer<typeof binaryEntry>;
export type ImageEntry = z.infer<typeof imageEntry>;
