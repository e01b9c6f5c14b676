import { formatPlatform, type Platform } from '../platform.js';
import type { BundleInventory } from './inventory.js';
import type { BundleScan } from './scan.js';
import type { AddProblem } from './check.js';

// The file checks of `analyseBundle` (`./check.ts`): each expected file against SHA256SUMS and bundle.json,
// the files nobody lists, unsafe names, modes, bundle.json's binary claims and ELF machines.

/** Files listed in SHA256SUMS but not in bundle.json's `files` (written after the inventory). */
export const NOT_IN_INVENTORY = new Set(['bundle.json', 'SHA256SUMS', 'sbom.cdx.json']);

export type InventoryFiles = Map<string, BundleInventory['files'][number]>;

/** What lists the files a bundle should hold: SHA256SUMS, bundle.json, and what the install scripts need (path → why). */
export interface Listings {
  sums: Map<string, string> | undefined;
  inventory: BundleInventory | undefined;
  invFiles: InventoryFiles;
  required: Map<string, string>;
}

/** One expected file, once, with all the reasons it is expected: present, complete, the bytes listed. */
export function expectedFileProblems(scan: BundleScan, { sums, invFiles, required }: Listings, path: string, add: AddProblem): void {
  const have = scan.files.get(path);
  const listedBy: string[] = [];
  if (sums?.has(path)) listedBy.push('listed in SHA256SUMS');
  if (invFiles.has(path)) listedBy.push('listed in bundle.json');
  const need = required.get(path);
  if (need) listedBy.push(need);
  if (!have) return add(need && !sums?.has(path) && !invFiles.has(path) ? 'required' : 'missing', path, `missing: ${path} (${listedBy.join('; ')})`);
  if (!have.complete) return add('truncated', path, `incomplete: ${path} is cut short (${have.size} bytes expected) by the truncation`);
  if (have.sha256 === undefined) return; // hashing off (inspect)
  const sum = sums?.get(path);
  const inv = invFiles.get(path);
  const claims: string[] = [];
  if (sum && sum !== have.sha256) claims.push(`SHA256SUMS says ${sum}`);
  if (inv && inv.sha256 !== have.sha256) claims.push(`bundle.json says ${inv.sha256}`);
  if (inv && inv.size !== have.size) claims.push(`bundle.json says ${inv.size} bytes, it has ${have.size}`);
  if (claims.length > 0) add('modified', path, `modified: ${path} has sha256 ${have.sha256}; ${claims.join('; ')}`);
  if (sum && inv && sum !== inv.sha256 && sum === have.sha256) add('inventory', path, `${path}: SHA256SUMS and bundle.json disagree (${sum} vs ${inv.sha256})`);
}

/** Files nobody lists. */
export function extraFileProblems(scan: BundleScan, { sums, inventory, invFiles }: Listings, add: AddProblem): void {
  for (const [path] of [...scan.files].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const notInSums = sums !== undefined && path !== 'SHA256SUMS' && !sums.has(path);
    const notInInv = inventory !== undefined && !NOT_IN_INVENTORY.has(path) && !invFiles.has(path);
    if (notInSums || notInInv) {
      add('extra', path, `extra: ${path} is in the tarball but not ${[notInSums ? 'in SHA256SUMS' : '', notInInv ? 'in bundle.json' : ''].filter(Boolean).join(' nor ')}`);
    }
  }
}

/** bundle.json's own claims about its binaries, where its files list agrees with the bytes. */
export function binaryClaimProblems(scan: BundleScan, { inventory, invFiles }: Listings, add: AddProblem): void {
  for (const b of inventory?.binaries ?? []) {
    const have = scan.files.get(b.path);
    const inv = invFiles.get(b.path);
    if (have?.sha256 && b.sha256 !== have.sha256 && inv?.sha256 === have.sha256) {
      add('inventory', b.path, `bundle.json: binary ${b.name} says sha256 ${b.sha256}, ${b.path} has ${have.sha256}`);
    }
  }
}

/** ELF binaries built for another machine. */
export function elfProblems(scan: BundleScan, want: Platform, add: AddProblem): void {
  for (const f of scan.files.values()) {
    const machine = elfMachine(f.head);
    if (machine && machine !== want.architecture) {
      add('platform', f.path, `platform: ${f.path} is an ELF binary for ${machine}, the bundle is for ${formatPlatform(want)}`);
    }
  }
}

/**
 * Entries whose name leaves the bundle's directory: a `..` component (`<top>/../../etc/x`). Reported as
 * layout problems naming the entry; an absolute name has no top directory and is a stray of scan.ts.
 */
export function unsafePathProblems(scan: BundleScan, add: AddProblem): void {
  for (const path of scan.files.keys()) {
    if (path.split('/').includes('..')) add('layout', path, `unsafe entry ${path}: its name leaves the bundle's directory ('..'); a bundle never holds one`);
  }
}

/** Files whose permission bits differ from bundle.json's `mode` (install.sh that is no longer executable…). */
export function modeProblems(scan: BundleScan, invFiles: Map<string, { mode: string }>, add: AddProblem): void {
  for (const [path, inv] of invFiles) {
    const have = scan.files.get(path);
    if (!have || !/^0?[0-7]{3,4}$/.test(inv.mode)) continue;
    const want = Number.parseInt(inv.mode, 8);
    const got = have.mode & 0o7777;
    if (got !== want) add('modified', path, `modified: ${path} has mode ${got.toString(8).padStart(4, '0')}; bundle.json says ${inv.mode}`);
  }
}

/** The architecture of an ELF header (x86-64, aarch64, arm), or undefined. */
export function elfMachine(head: Buffer): 'amd64' | 'arm64' | 'arm' | '386' | 'other' | undefined {
  if (head.length < 20 || head.readUInt32BE(0) !== 0x7f454c46) return undefined;
  const machine = head[5] === 2 ? head.readUInt16BE(18) : head.readUInt16LE(18);
  switch (machine) {
    case 0x3e:
      return 'amd64';
    case 0xb7:
      return 'arm64';
    case 0x28:
      return 'arm';
    case 0x03:
      return '386';
    default:
      return 'other';
  }
}
