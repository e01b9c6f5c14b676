/**
 * The default, daemonless image engine: pulls images for one platform from registries (through the
 * mirrors of a K3s-style registries.yaml), verifies every blob into a content-addressed cache, and writes
 * one OCI-layout + docker-load archive (src/archive/oci-archive.ts).
 */
export { createRegistryEngine, archiveImages, type RegistryEngineOptions } from './engine.js';
export {
  loadRegistriesConfig,
  parseRegistriesConfig,
  resolveEndpoints,
  emptyRegistriesConfig,
  isLoopbackHost,
  type RegistriesConfig,
  type MirrorConfig,
  type RegistryHostConfig,
  type RegistryAuthConfig,
  type RegistryTlsConfig,
  type Endpoint,
} from './mirrors.js';
export type { RetryOptions } from '../../util/retry.js';
