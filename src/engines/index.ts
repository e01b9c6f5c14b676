import { UserError } from '../errors.js';
import type { ImageEngine } from './types.js';

export type EngineName = 'registry' | 'docker';
export const ENGINES: readonly EngineName[] = ['registry', 'docker'];

export interface EngineOptions {
  /** registries.yaml (K3s/containerd format) with mirrors and credentials. */
  registriesFile?: string;
  /** Docker config.json with credentials; default ~/.docker/config.json. */
  dockerConfigPath?: string;
  /** docker engine: keep the pulled images in the daemon under its own tags (see DockerEngineOptions). */
  keepImages?: boolean;
}

/** Creates the engine `build --engine` names. Engines are loaded lazily: a build without images loads none. */
export async function createEngine(name: EngineName, opts: EngineOptions): Promise<ImageEngine> {
  if (name === 'registry') {
    const { createRegistryEngine, loadRegistriesConfig } = await import('./registry/index.js');
    return createRegistryEngine({
      ...(opts.registriesFile ? { registries: await loadRegistriesConfig(opts.registriesFile) } : {}),
      ...(opts.dockerConfigPath ? { dockerConfigPath: opts.dockerConfigPath } : {}),
    });
  }
  if (name === 'docker') {
    const { createDockerEngine } = await import('./docker/index.js');
    return createDockerEngine({ ...(opts.dockerConfigPath ? { dockerConfigPath: opts.dockerConfigPath } : {}), ...(opts.keepImages ? { keepImages: true } : {}) });
  }
  throw new UserError(`unknown image engine '${String(name)}'`, { code: 'usage', hint: `use one of ${ENGINES.join(', ')}` });
}
