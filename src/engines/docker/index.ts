/**
 * The Docker engine (`build --engine docker`): images go through the user's Docker daemon (its mirrors,
 * credentials and local-only images) and end up in the same archive the registry engine writes.
 */
export { createDockerEngine, DockerEngine, type DockerEngineOptions, type DockerArchiveResult, type DockerTimings } from './engine.js';
export { daemonAddress, connectDaemon, type DaemonAddress } from './connect.js';
export { readDockerSave, type SavedImage } from './save-archive.js';
export { LayerStore, type StoredLayer } from './layers.js';
export { readTar, type TarEntry } from './tar-reader.js';
export { followPull, type PullEvent } from './pull-stream.js';
