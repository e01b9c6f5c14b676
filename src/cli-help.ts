import type { CommandName } from './cli-options.js';

/**
 * What `--help` says about the program and each command besides its options (those come from
 * cli-options.ts): the description, the positional arguments and the examples. No command module is
 * loaded to print it.
 */
export interface CommandHelp {
  description: string;
  args?: readonly (readonly [spec: string, description: string])[];
  examples: string;
}

export const PROGRAM_HELP: CommandHelp = {
  description: 'Builds offline install bundles for a K3s cloud node and KubeEdge edge nodes (EdgeMesh, metrics-server).',
  examples: `
Examples:
  $ kubeprepare build --arch arm64                 cloud + edge tarballs for arm64 into dist/
  $ kubeprepare plan --arch amd64,arm64 --json     what a build would fetch and write
  $ kubeprepare render --arch arm64 --out rendered templates only, for review
  $ kubeprepare verify dist/kubeprepare-edge-v1.22.0-linux-arm64.tar   check a bundle offline
  $ kubeprepare inspect dist/kubeprepare-cloud-v1.22.0-linux-arm64.tar what a bundle holds
  $ bundle build --arch arm64                      the same command under its other name

Exit codes: 0 success, 1 failure while working, 2 bad usage or bad input, 70 internal error (a bug).`,
};

const TARBALL = ['<tarball>', 'bundle tarball (.tar, .tar.gz or .tar.zst, detected by content)'] as const;

export const COMMAND_HELP: Record<CommandName, CommandHelp> = {
  build: {
    description: 'fetch images and binaries for exactly the given platforms and write cloud and edge tarballs plus SHA256SUMS',
    examples: `
Examples:
  $ kubeprepare build --arch arm64
  $ kubeprepare build --arch amd64,arm64,arm --out release/ --compression gzip
  $ kubeprepare build --arch arm64 --only edge --registries mirrors.yaml
  $ kubeprepare build --arch arm64 --binary-mirror https://github.com/=http://mirror.local/github/
  $ kubeprepare build --arch arm64 --sbom          with sbom.cdx.json in each tarball`,
  },
  plan: {
    description: 'show what build would fetch and write, without downloading',
    examples: `
Examples:
  $ kubeprepare plan --arch arm64
  $ kubeprepare plan --arch amd64,arm64 --json | jq '.bundles[].images[].ref'`,
  },
  render: {
    description: 'render the install templates only (no downloads) into a directory per bundle',
    examples: `
Examples:
  $ kubeprepare render --arch arm64 --out /tmp/r && shellcheck /tmp/r/*/install.sh
  $ kubeprepare render --arch amd64 --only cloud --templates ./my-templates`,
  },
  images: {
    description: 'write only the images archive (OCI layout + docker manifest.json) for one platform',
    args: [['[refs...]', "image references (default: the manifest's images)"]],
    examples: `
Examples:
  $ kubeprepare images --arch arm64 --out images-arm64.tar
  $ kubeprepare images --arch arm --only edge --out edge-arm.tar
  $ kubeprepare images --arch amd64 --out extra.tar docker.io/library/nginx:1.27 registry.k8s.io/pause:3.10`,
  },
  verify: {
    description: 'check a bundle tarball offline: every file, image blob and platform; lists every problem found',
    args: [TARBALL],
    examples: `
Examples:
  $ kubeprepare verify kubeprepare-edge-v1.22.0-linux-arm64.tar
  $ kubeprepare verify kubeprepare-cloud-v1.22.0-linux-arm64.tar --arch arm64
  $ kubeprepare verify bundle.tar.gz --json | jq -r '.problems[].message'

Exit codes: 0 the bundle is intact, 1 problems found (all listed), 2 the file cannot be read.`,
  },
  inspect: {
    description: 'show what a bundle tarball holds: components, images, binaries, deduplication (offline)',
    args: [TARBALL],
    examples: `
Examples:
  $ kubeprepare inspect kubeprepare-cloud-v1.22.0-linux-arm64.tar
  $ kubeprepare inspect kubeprepare-edge-v1.22.0-linux-arm64.tar --json | jq '.images[] | {ref, platform}'`,
  },
};
