// CLI for the bats suite: `node --import tsx test/bats/helpers/render-bundle.ts <side> <arch> <outDir>`
// writes a fake bundle (see test/payload/helpers.ts) and prints its context as JSON.
import { writeFakeBundle } from '../../payload/helpers.js';
import type { Arch } from '../../../src/platform.js';

const [side, arch, out] = process.argv.slice(2);
if ((side !== 'cloud' && side !== 'edge') || !arch || !out) {
  console.error('usage: render-bundle.ts cloud|edge amd64|arm64|arm <outDir>');
  process.exit(2);
}
const ctx = await writeFakeBundle(side, arch as Arch, out);
console.log(JSON.stringify(ctx));
