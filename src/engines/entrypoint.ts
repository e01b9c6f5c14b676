import { NeedLayer, resolvePath, type LayerEntry, type LayerIndex, type LayerStack } from './layer-index.js';

/**
 * What is inside an image: the file its entrypoint (or, without one, the first word of its cmd) runs,
 * resolved through the image's layers as the container's root filesystem would hold it (the topmost
 * layer decides; `.wh.` whiteouts and `.wh..wh..opq` opaque directories hide lower layers; symlinks
 * are followed inside the image; a `#!` script is checked through its interpreter), and whether that
 * file is an ELF binary for the image's platform (EI_CLASS and e_machine).
 *
 * Layers are read as streams (node-tar's Parser, gzip detected by it) into a small index of their
 * entries (path, type, link target, and the first bytes of executable files); a lower layer is read
 * only when the layers above it do not decide a path (src/engines/layer-index.ts).
 */

const MACHINES: Record<number, string> = { 0x03: 'x86 (i386)', 0x08: 'MIPS', 0x14: 'PowerPC', 0x15: 'PowerPC64', 0x16: 'S/390', 0x28: 'ARM (32-bit)', 0x3e: 'x86-64', 0xb7: 'AArch64', 0xf3: 'RISC-V' };
const EXPECTED: Record<string, { cls: number; machine: number }> = {
  amd64: { cls: 2, machine: 0x3e },
  arm64: { cls: 2, machine: 0xb7 },
  arm: { cls: 1, machine: 0x28 },
};

/** `{ cls, machine }` of an ELF header, else undefined. */
export function elfIdent(head: Buffer | undefined): { cls: number; machine: number } | undefined {
  if (!head || head.length < 20 || head.readUInt32BE(0) !== 0x7f454c46) return undefined;
  return { cls: head[4] ?? 0, machine: head[5] === 2 ? head.readUInt16BE(18) : head.readUInt16LE(18) };
}

export function describeElf(id: { cls: number; machine: number }): string {
  return `${MACHINES[id.machine] ?? `machine 0x${id.machine.toString(16)}`}, ${id.cls === 1 ? '32-bit' : id.cls === 2 ? '64-bit' : `class ${id.cls}`}`;
}

export interface ImageConfigLike {
  architecture?: string;
  config?: { Entrypoint?: string[] | null; Cmd?: string[] | null; Env?: string[] | null; WorkingDir?: string };
}

export interface EntrypointFinding {
  /** The program as the config names it. */
  program: string | undefined;
  /** Problems: each names the file in the image. Empty when the binary fits the platform. */
  problems: string[];
  /** Why nothing could be checked (no entrypoint/cmd, an unreadable layer), when so. */
  unchecked?: string;
}

const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/**
 * Checks the entrypoint of an image against `architecture` (amd64, arm64, arm) over its layer stack.
 * Throws NeedLayer internally; `checkEntrypoint` below loads layers on demand.
 */
function checkOver(layers: LayerStack, config: ImageConfigLike, architecture: string): EntrypointFinding {
  const c = config.config ?? {};
  const argv = c.Entrypoint && c.Entrypoint.length > 0 ? c.Entrypoint : c.Cmd && c.Cmd.length > 0 ? c.Cmd : undefined;
  const program = argv?.[0];
  if (!program) return { program: undefined, problems: [], unchecked: 'the image config names no entrypoint or cmd' };
  const want = EXPECTED[architecture];
  if (!want) return { program, problems: [], unchecked: `no ELF machine known for ${architecture}` };
  // A program without a slash is looked up in the config's PATH, as the runtime does.
  let candidates: string[];
  if (program.includes('/')) candidates = [program.startsWith('/') ? program : `${c.WorkingDir || '/'}/${program}`];
  else {
    const pathVar = (c.Env ?? []).find((e) => e.startsWith('PATH='))?.slice(5) ?? DEFAULT_PATH;
    candidates = pathVar.split(':').filter(Boolean).map((d) => `${d}/${program}`);
  }
  let found: { path: string; entry: LayerEntry } | undefined;
  let why = '';
  for (const cand of candidates) {
    const r = resolvePath(layers, cand);
    if ('entry' in r && r.entry.type !== 'dir') {
      found = r;
      break;
    }
    why = 'missing' in r ? `${r.path}: ${r.missing}` : `${r.path}: is a directory`;
  }
  if (!found) {
    const where = program.includes('/') ? why : `not found in PATH (${candidates.map((x) => x.slice(0, -program.length - 1)).join(':')})`;
    return { program, problems: [`${program}: ${where}`] };
  }
  return { program, problems: checkFile(layers, found, want, program, 0) };
}

function checkFile(layers: LayerStack, f: { path: string; entry: LayerEntry }, want: { cls: number; machine: number }, shown: string, depth: number, note = ''): string[] {
  const named = `${f.path === shown ? f.path : `${shown} (${f.path})`}${note}`;
  if (f.entry.type !== 'file' && f.entry.type !== 'hardlink') return [`${named} is not a regular file`];
  if ((f.entry.mode & 0o111) === 0) return [`${named} is not executable (mode 0${(f.entry.mode & 0o7777).toString(8)})`];
  const head = f.entry.head;
  const id = elfIdent(head);
  if (id) {
    if (id.cls === want.cls && id.machine === want.machine) return [];
    return [`${named} is an ELF binary for ${describeElf(id)}, not ${describeElf(want)}`];
  }
  if (head && head.subarray(0, 2).toString('latin1') === '#!') {
    const line = head.subarray(2).toString('latin1').split('\n')[0] ?? '';
    const interp = line.trim().split(/\s+/)[0] ?? '';
    if (!interp.startsWith('/')) return [`${named}: its #! line names no absolute interpreter ('${line.trim()}')`];
    if (depth >= 4) return [`${named}: #! interpreters nest too deep`];
    const r = resolvePath(layers, interp);
    if (!('entry' in r)) return [`${named}: its interpreter ${interp} (#!) — ${r.path}: ${r.missing}`];
    return checkFile(layers, r, want, interp, depth + 1, ` (the #! interpreter of ${f.path})`);
  }
  return [`${named} is neither an ELF binary nor a #! script`];
}

/**
 * Checks an image's entrypoint binary against `architecture`, reading layers (bottom = 0) on demand
 * from the top down with `load`; layers below the ones that decide the paths are never read.
 */
export async function checkEntrypoint(config: ImageConfigLike, architecture: string, layerCount: number, load: (n: number) => Promise<LayerIndex>): Promise<EntrypointFinding> {
  const layers: LayerStack = new Array<LayerIndex | undefined>(layerCount).fill(undefined);
  for (;;) {
    try {
      return checkOver(layers, config, architecture);
    } catch (e) {
      if (!(e instanceof NeedLayer)) throw e;
      const ix = await load(e.n);
      if (ix.unreadable) return { program: undefined, problems: [], unchecked: `layer ${e.n + 1} of ${layerCount}: ${ix.unreadable}` };
      layers[e.n] = ix;
    }
  }
}

/** The same over layers already indexed (verify reads every layer once as the bundle streams by). */
export function checkEntrypointIndexed(config: ImageConfigLike, architecture: string, layers: (LayerIndex | undefined)[]): EntrypointFinding {
  try {
    return checkOver(layers.map((l) => (l && !l.unreadable ? l : undefined)), config, architecture);
  } catch (e) {
    if (!(e instanceof NeedLayer)) throw e;
    const l = layers[e.n];
    return { program: undefined, problems: [], unchecked: `layer ${e.n + 1} of ${layers.length}: ${l?.unreadable ?? 'not readable in the archive'}` };
  }
}
